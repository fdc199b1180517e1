// Package ocsp is hardbound's OCSP responder (RFC 6960) for the issuing
// CA's device certificates, answering from the store and, per profile,
// from the device's posture (docs/ocsp.md).
package ocsp

import (
	"crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
)

// MaxRequestBytes bounds a request body or decoded GET path. A
// one-certificate request with a nonce is about 100 bytes; RFC 5019 §5
// expects GET requests under 255 bytes.
const MaxRequestBytes = 4 << 10

// MaxNonceLen is RFC 8954's bound on the nonce octets.
const MaxNonceLen = 32

var (
	oidNonce  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
	oidSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
)

// ErrMalformed is a request that is not a one-certificate OCSPRequest.
var ErrMalformed = errors.New("ocsp: malformed request")

// The request structures of RFC 6960 §4.1.1.
type ocspRequest struct {
	TBS tbsRequest
	// optionalSignature is accepted and ignored: the responder answers
	// anyone (RFC 6960 §4.1.2).
	Signature asn1.RawValue `asn1:"explicit,tag:0,optional"`
}

type tbsRequest struct {
	Version       int           `asn1:"explicit,tag:0,default:0,optional"`
	RequestorName asn1.RawValue `asn1:"explicit,tag:1,optional"`
	RequestList   []singleRequest
	Extensions    []pkix.Extension `asn1:"explicit,tag:2,optional"`
}

type singleRequest struct {
	Cert       certID
	Extensions []pkix.Extension `asn1:"explicit,tag:0,optional"`
}

type certID struct {
	HashAlgorithm pkix.AlgorithmIdentifier
	NameHash      []byte
	IssuerKeyHash []byte
	SerialNumber  *big.Int
}

// Request is a parsed one-certificate OCSP request.
type Request struct {
	Hash           crypto.Hash
	hashOID        asn1.ObjectIdentifier
	IssuerNameHash []byte
	IssuerKeyHash  []byte
	Serial         *big.Int
	// Nonce is the nonce extension's extnValue as sent (the DER of an
	// OCTET STRING), echoed in the response; nil when none was sent.
	Nonce []byte
}

// ParseRequest parses a DER OCSPRequest. RFC 5019 §2.1.1 profiles
// requests to a single certificate, and that is all this responder
// answers; a request for several, an unknown hash algorithm, trailing
// bytes or a nonce longer than MaxNonceLen is ErrMalformed.
func ParseRequest(der []byte) (*Request, error) {
	if len(der) > MaxRequestBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(der))
	}
	var req ocspRequest
	rest, err := asn1.Unmarshal(der, &req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: trailing data", ErrMalformed)
	}
	if req.TBS.Version != 0 {
		return nil, fmt.Errorf("%w: version %d", ErrMalformed, req.TBS.Version)
	}
	if n := len(req.TBS.RequestList); n != 1 {
		return nil, fmt.Errorf("%w: %d certificates requested, exactly one is answered", ErrMalformed, n)
	}
	id := req.TBS.RequestList[0].Cert
	h := hashOf(id.HashAlgorithm.Algorithm)
	if h == 0 {
		return nil, fmt.Errorf("%w: hash algorithm %v", ErrMalformed, id.HashAlgorithm.Algorithm)
	}
	if len(id.NameHash) != h.Size() || len(id.IssuerKeyHash) != h.Size() {
		return nil, fmt.Errorf("%w: issuer hashes are not %s digests", ErrMalformed, h)
	}
	if id.SerialNumber == nil || id.SerialNumber.Sign() <= 0 {
		return nil, fmt.Errorf("%w: serial number not positive", ErrMalformed)
	}
	r := &Request{Hash: h, hashOID: id.HashAlgorithm.Algorithm, IssuerNameHash: id.NameHash,
		IssuerKeyHash: id.IssuerKeyHash, Serial: id.SerialNumber}
	for _, ext := range req.TBS.Extensions {
		if !ext.Id.Equal(oidNonce) {
			continue
		}
		var nonce []byte
		if rest, err := asn1.Unmarshal(ext.Value, &nonce); err != nil || len(rest) != 0 {
			return nil, fmt.Errorf("%w: nonce is not an OCTET STRING", ErrMalformed)
		}
		if len(nonce) == 0 || len(nonce) > MaxNonceLen {
			return nil, fmt.Errorf("%w: nonce of %d octets (RFC 8954: 1..%d)", ErrMalformed, len(nonce), MaxNonceLen)
		}
		r.Nonce = ext.Value
	}
	return r, nil
}

func hashOf(oid asn1.ObjectIdentifier) crypto.Hash {
	switch {
	case oid.Equal(oidSHA1):
		return crypto.SHA1
	case oid.Equal(oidSHA256):
		return crypto.SHA256
	case oid.Equal(oidSHA384):
		return crypto.SHA384
	case oid.Equal(oidSHA512):
		return crypto.SHA512
	}
	return 0
}
