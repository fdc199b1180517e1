package scep

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/smallstep/pkcs7"
	"github.com/smallstep/scep"
)

// RFC 8894 §3.2.1 signed-attribute OIDs (id-attributes, 2.16.840.1.113733.1.9.x).
var (
	oidMessageType    = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 2}
	oidPKIStatus      = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 3}
	oidFailInfo       = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 4}
	oidSenderNonce    = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 5}
	oidRecipientNonce = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 6}
	oidTransactionID  = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 7}
	// OIDFailInfoText is RFC 8894 §3.2.1.4.5 id-scep-failInfoText: a
	// UTF8String saying why a request failed, beside failInfo.
	OIDFailInfoText = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 24, 1}
)

// Bounds on what a request envelope may carry.
const (
	maxEnvelopeCerts = 8
	maxTransactionID = 128
	maxNonce         = 64
)

// errUnanswerable marks an envelope too broken to answer with a CertRep
// (no signer, no transactionID or senderNonce): the handler answers 400.
var errUnanswerable = errors.New("scep: unanswerable message")

// envelope is a request's outer SignedData with the fields needed to answer
// it, read before (and independently of) smallstep/scep's parser.
type envelope struct {
	signer        *x509.Certificate
	transactionID string
	messageType   scep.MessageType
	senderNonce   []byte
	verifyErr     error // outer signature check
}

// parseEnvelope reads the signer, transactionID, messageType and
// senderNonce of a PKIMessage and verifies its signature. The smallstep
// parsers are not hardened against hostile input, so a panic inside them is
// turned into an error rather than taking the server down.
func parseEnvelope(raw []byte) (env *envelope, err error) {
	defer func() {
		if r := recover(); r != nil {
			env, err = nil, fmt.Errorf("%w: parser panic: %v", errUnanswerable, r)
		}
	}()
	p7, err := pkcs7.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUnanswerable, err)
	}
	if len(p7.Certificates) > maxEnvelopeCerts {
		return nil, fmt.Errorf("%w: %d certificates in envelope", errUnanswerable, len(p7.Certificates))
	}
	signer := p7.GetOnlySigner()
	if signer == nil {
		return nil, fmt.Errorf("%w: need exactly one signer with its certificate", errUnanswerable)
	}
	env = &envelope{signer: signer}
	var tid scep.TransactionID
	if err := p7.UnmarshalSignedAttribute(oidTransactionID, &tid); err != nil || tid == "" || len(tid) > maxTransactionID {
		return nil, fmt.Errorf("%w: bad transactionID", errUnanswerable)
	}
	var mt scep.MessageType
	if err := p7.UnmarshalSignedAttribute(oidMessageType, &mt); err != nil || len(mt) > 4 {
		return nil, fmt.Errorf("%w: bad messageType", errUnanswerable)
	}
	var sn scep.SenderNonce
	if err := p7.UnmarshalSignedAttribute(oidSenderNonce, &sn); err != nil || len(sn) == 0 || len(sn) > maxNonce {
		return nil, fmt.Errorf("%w: bad senderNonce", errUnanswerable)
	}
	env.transactionID, env.messageType, env.senderNonce = string(tid), mt, sn
	env.verifyErr = p7.Verify()
	return env, nil
}

// parseAndDecrypt runs smallstep/scep's parser (verifying against the one
// signer we found, so the CertRep is later encrypted to it alone) and
// decrypts the pkiEnvelope with the RA key.
func parseAndDecrypt(raw []byte, env *envelope, ra *RA) (msg *scep.PKIMessage, err error) {
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("scep: parser panic: %v", r)
		}
	}()
	msg, err = scep.ParsePKIMessage(raw, scep.WithCACerts([]*x509.Certificate{env.signer}))
	if err != nil {
		return nil, fmt.Errorf("scep: parse pkiMessage: %w", err)
	}
	if err := msg.DecryptPKIEnvelope(ra.Cert, ra.Key); err != nil {
		return nil, fmt.Errorf("scep: decrypt pkiEnvelope: %w", err)
	}
	if msg.CSRReqMessage == nil || msg.CSR == nil {
		return nil, errors.New("scep: pkiEnvelope holds no CSR")
	}
	return msg, nil
}

// pkcs7Defaults makes CMS envelopes AES-128-CBC (advertised in GetCACaps)
// instead of smallstep/pkcs7's DES-CBC default, which OpenSSL 3 clients can
// no longer decrypt. The library only offers a package variable for this,
// so it is set exactly once, and every user of pkcs7.Encrypt in hardbound
// (this handler, sceptest) calls ConfigurePKCS7 first, which orders the
// write before their reads.
var pkcs7Defaults sync.Once

// ConfigurePKCS7 sets smallstep/pkcs7's content encryption to AES-128-CBC,
// once per process. New calls it; call it before using pkcs7.Encrypt
// elsewhere (sceptest does).
func ConfigurePKCS7() {
	pkcs7Defaults.Do(func() {
		pkcs7.ContentEncryptionAlgorithm = pkcs7.EncryptionAlgorithmAES128CBC
	})
}

// certRep builds an RFC 8894 §3.3.2 CertRep signed by the RA with SHA-256.
// For SUCCESS, cert is encrypted to the request's signer certificate; for
// FAILURE, info is the failInfo and text, if any, the failInfoText.
func certRep(ra *RA, env *envelope, cert *x509.Certificate, info scep.FailInfo, text string) ([]byte, error) {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("scep: certrep nonce: %w", err)
	}
	attrs := []pkcs7.Attribute{
		{Type: oidTransactionID, Value: scep.TransactionID(env.transactionID)},
		{Type: oidMessageType, Value: scep.CertRep},
		{Type: oidSenderNonce, Value: scep.SenderNonce(nonce)},
		{Type: oidRecipientNonce, Value: scep.RecipientNonce(env.senderNonce)},
	}
	var content []byte
	if cert != nil {
		deg, err := scep.DegenerateCertificates([]*x509.Certificate{cert})
		if err != nil {
			return nil, fmt.Errorf("scep: certrep: %w", err)
		}
		content, err = pkcs7.Encrypt(deg, []*x509.Certificate{env.signer})
		if err != nil {
			return nil, fmt.Errorf("scep: certrep: encrypt: %w", err)
		}
		attrs = append(attrs, pkcs7.Attribute{Type: oidPKIStatus, Value: scep.SUCCESS})
	} else {
		attrs = append(attrs,
			pkcs7.Attribute{Type: oidPKIStatus, Value: scep.FAILURE},
			pkcs7.Attribute{Type: oidFailInfo, Value: info})
		if text != "" {
			attrs = append(attrs, pkcs7.Attribute{Type: OIDFailInfoText,
				Value: asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte(strings.ToValidUTF8(text, "?"))}})
		}
	}
	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		return nil, fmt.Errorf("scep: certrep: %w", err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if cert != nil {
		// Clients take the first certificate of the SignedData as theirs.
		sd.AddCertificate(cert)
	}
	if err := sd.AddSigner(ra.Cert, ra.Key, pkcs7.SignerInfoConfig{ExtraSignedAttributes: attrs}); err != nil {
		return nil, fmt.Errorf("scep: certrep: sign: %w", err)
	}
	out, err := sd.Finish()
	if err != nil {
		return nil, fmt.Errorf("scep: certrep: %w", err)
	}
	return out, nil
}
