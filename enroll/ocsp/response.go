package ocsp

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"time"

	xocsp "golang.org/x/crypto/ocsp"
)

// The response structures of RFC 6960 §4.2.1. golang.org/x/crypto/ocsp
// builds responses too, but it has no place for responseExtensions, where
// the nonce must be echoed (RFC 6960 §4.4.1, RFC 8954), so the
// BasicOCSPResponse is encoded here; signing is the crypto.Signer's.
var (
	oidBasic       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}
	oidECDSASHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): the responder's own
	// certificate is not checked by OCSP; it is short-lived instead.
	oidNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}
)

type responseASN1 struct {
	Status   asn1.Enumerated
	Response responseBytes `asn1:"explicit,tag:0,optional"`
}

type responseBytes struct {
	ResponseType asn1.ObjectIdentifier
	Response     []byte
}

type basicResponse struct {
	TBS       asn1.RawValue
	Algorithm pkix.AlgorithmIdentifier
	Signature asn1.BitString
	Certs     []asn1.RawValue `asn1:"explicit,tag:0,optional"`
}

type responseData struct {
	Version     int `asn1:"optional,default:0,explicit,tag:0"`
	ResponderID asn1.RawValue
	ProducedAt  time.Time `asn1:"generalized"`
	Responses   []singleResponse
	Extensions  []pkix.Extension `asn1:"explicit,tag:1,optional"`
}

type singleResponse struct {
	CertID     certID
	Status     asn1.RawValue
	ThisUpdate time.Time `asn1:"generalized"`
	NextUpdate time.Time `asn1:"generalized,explicit,tag:0,optional"`
}

type revokedInfo struct {
	RevocationTime time.Time       `asn1:"generalized"`
	Reason         asn1.Enumerated `asn1:"explicit,tag:0,optional"`
}

// Answer is the status of one certificate: Status is xocsp.Good, Revoked
// or Unknown; RevokedAt and Reason (an RFC 5280 CRLReason) are set for
// Revoked. Why is the responder's own account (posture reason, store
// status), logged, never sent.
type Answer struct {
	Status    int
	RevokedAt time.Time
	Reason    int
	Why       string
}

// sign encodes and signs a successful response for req with answer a.
func sign(s *signerKey, req *Request, a Answer, now, nextUpdate time.Time) ([]byte, error) {
	status, err := certStatus(a)
	if err != nil {
		return nil, err
	}
	keyID, err := asn1.Marshal(s.keyHash)
	if err != nil {
		return nil, err
	}
	tbs := responseData{
		// byKey [2] (RFC 6960 §4.2.2.3): the SHA-1 of the signer's key.
		ResponderID: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, IsCompound: true, Bytes: keyID},
		ProducedAt:  now.UTC().Truncate(time.Second),
		Responses: []singleResponse{{
			CertID: certID{
				HashAlgorithm: pkix.AlgorithmIdentifier{Algorithm: req.hashOID, Parameters: asn1.NullRawValue},
				NameHash:      req.IssuerNameHash,
				IssuerKeyHash: req.IssuerKeyHash,
				SerialNumber:  req.Serial,
			},
			Status:     asn1.RawValue{FullBytes: status},
			ThisUpdate: now.UTC().Truncate(time.Second),
			NextUpdate: nextUpdate.UTC().Truncate(time.Second),
		}},
	}
	if req.Nonce != nil {
		tbs.Extensions = []pkix.Extension{{Id: oidNonce, Value: req.Nonce}}
	}
	tbsDER, err := asn1.Marshal(tbs)
	if err != nil {
		return nil, fmt.Errorf("ocsp: encode response data: %w", err)
	}
	digest := sha256.Sum256(tbsDER)
	sig, err := s.key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("ocsp: sign: %w", err)
	}
	basic, err := asn1.Marshal(basicResponse{
		TBS:       asn1.RawValue{FullBytes: tbsDER},
		Algorithm: pkix.AlgorithmIdentifier{Algorithm: oidECDSASHA256},
		Signature: asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)},
		Certs:     []asn1.RawValue{{FullBytes: s.cert.Raw}},
	})
	if err != nil {
		return nil, fmt.Errorf("ocsp: encode basic response: %w", err)
	}
	return asn1.Marshal(responseASN1{
		Status:   asn1.Enumerated(xocsp.Success),
		Response: responseBytes{ResponseType: oidBasic, Response: basic},
	})
}

// certStatus is the DER of the CertStatus CHOICE, whose alternatives are
// IMPLICIT: good [0] NULL, revoked [1] RevokedInfo, unknown [2] NULL.
func certStatus(a Answer) ([]byte, error) {
	switch a.Status {
	case xocsp.Good:
		return []byte{0x80, 0x00}, nil
	case xocsp.Unknown:
		return []byte{0x82, 0x00}, nil
	case xocsp.Revoked:
		return asn1.MarshalWithParams(revokedInfo{
			RevocationTime: a.RevokedAt.UTC().Truncate(time.Second),
			Reason:         asn1.Enumerated(a.Reason),
		}, "tag:1")
	}
	return nil, fmt.Errorf("ocsp: status %d", a.Status)
}

// keyHashOf is the SHA-1 of a certificate's subjectPublicKey BIT STRING,
// the KeyHash of RFC 6960 §4.1.1 and §4.2.1.
func keyHashOf(c *x509.Certificate, h crypto.Hash) ([]byte, error) {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(c.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil, fmt.Errorf("ocsp: parse public key: %w", err)
	}
	d := h.New()
	d.Write(spki.PublicKey.RightAlign())
	return d.Sum(nil), nil
}
