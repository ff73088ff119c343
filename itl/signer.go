package itl

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"time"
)

// Signer is a certificate with its private key: what signs trust lists and
// .sgn files (CallManager.pem, ITLRecovery, an eToken SAST). Only RSA keys
// can sign this format. A Signer is safe for concurrent use when its Key
// is (crypto/rsa keys are).
type Signer struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// SignerOption adjusts NewSigner. Options are pure functions and may be
// reused.
type SignerOption func(*signerOptions)

type signerOptions struct {
	subject   pkix.Name
	issuer    *Signer
	notBefore time.Time
	validFor  time.Duration
	isCA      bool
}

// WithSubject sets the whole subject; cn still fills CommonName when the
// name has none.
func WithSubject(name pkix.Name) SignerOption {
	return func(o *signerOptions) { o.subject = name }
}

// IssuedBy makes parent sign the certificate instead of the certificate
// itself, so issuer and subject differ as with a CA-issued CallManager.pem.
func IssuedBy(parent *Signer) SignerOption {
	return func(o *signerOptions) { o.issuer = parent }
}

// ValidFrom sets the validity window (default: from one hour ago, for ten
// years; ITLRecovery certificates last twenty).
func ValidFrom(notBefore time.Time, d time.Duration) SignerOption {
	return func(o *signerOptions) { o.notBefore, o.validFor = notBefore, d }
}

// AsCA marks the certificate as a CA that may sign others.
func AsCA() SignerOption {
	return func(o *signerOptions) { o.isCA = true }
}

// NewSigner makes an RSA key of the given size (1024, 2048 or 4096 bits;
// phones take at most 2048) and a certificate for it with CommonName cn,
// self-signed unless IssuedBy says otherwise. `ctftp demo` uses it to make
// a PKI at run time.
func NewSigner(cn string, bits int, opts ...SignerOption) (*Signer, error) {
	if _, ok := modulusCode(bits); !ok || bits < 1024 {
		return nil, fmt.Errorf("itl: new signer %q: %d-bit keys: want 1024, 2048 or 4096: %w", cn, bits, ErrUnsupported)
	}
	o := signerOptions{validFor: 10 * 365 * 24 * time.Hour}
	for _, opt := range opts {
		opt(&o)
	}
	if o.subject.CommonName == "" && !hasCN(o.subject) {
		o.subject.CommonName = cn
	}
	if o.notBefore.IsZero() {
		o.notBefore = time.Now().Add(-time.Hour)
	}
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, fmt.Errorf("itl: new signer %q: %w", cn, err)
	}
	// 16 random bytes with the top bit cleared: positive, and as long as
	// the 16-byte serials seen in CUCM dumps.
	serialBytes := make([]byte, 16)
	if _, err := rand.Read(serialBytes); err != nil {
		return nil, fmt.Errorf("itl: new signer %q: serial: %w", cn, err)
	}
	serialBytes[0] &= 0x7f
	serialBytes[0] |= 0x10 // never leading zeros, so every encoding agrees
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(serialBytes),
		Subject:               o.subject,
		NotBefore:             o.notBefore,
		NotAfter:              o.notBefore.Add(o.validFor),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  o.isCA,
	}
	if o.isCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	parent, parentKey := tmpl, crypto.Signer(key)
	if o.issuer != nil {
		parent, parentKey = o.issuer.Cert, o.issuer.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, fmt.Errorf("itl: new signer %q: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("itl: new signer %q: %w", cn, err)
	}
	return &Signer{Cert: cert, Key: key}, nil
}

// hasCN reports a CommonName given through ExtraNames, which is how a
// caller fixes the attribute order (CUCM certificates start with CN).
func hasCN(n pkix.Name) bool {
	for _, a := range n.ExtraNames {
		if a.Type.Equal(asn1.ObjectIdentifier{2, 5, 4, 3}) {
			return true
		}
	}
	return false
}

// rsaKey checks that s can sign this format and returns its public key.
func (s *Signer) rsaKey() (*rsa.PublicKey, error) {
	if s == nil || s.Cert == nil || s.Key == nil {
		return nil, fmt.Errorf("itl: no signer certificate and key: %w", ErrUnsupported)
	}
	pub, ok := s.Key.Public().(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("itl: signer key is %T, only RSA can sign: %w", s.Key.Public(), ErrUnsupported)
	}
	if !pub.Equal(s.Cert.PublicKey) {
		return nil, fmt.Errorf("itl: signer key does not belong to its certificate %q: %w", s.Cert.Subject, ErrInvalidPEM)
	}
	if _, ok := modulusCode(pub.N.BitLen()); !ok {
		return nil, fmt.Errorf("itl: %d-bit signer key, want 1024, 2048 or 4096: %w", pub.N.BitLen(), ErrUnsupported)
	}
	return pub, nil
}

// PEM encodes the certificate and its key (PKCS#1 "RSA PRIVATE KEY", the
// form CUCM and openssl's traditional output use) for LoadSignerPEM.
func (s *Signer) PEM() ([]byte, error) {
	k, ok := s.Key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("itl: signer key %T cannot be written as PEM: %w", s.Key, ErrUnsupported)
	}
	var b bytes.Buffer
	_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: s.Cert.Raw})
	_ = pem.Encode(&b, &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	return b.Bytes(), nil
}

// LoadSignerPEM reads a PEM file holding a certificate and its RSA private
// key (PKCS#1 or PKCS#8), in any order.
func LoadSignerPEM(path string) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("itl: signer: %w", err)
	}
	s, err := ParseSignerPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return s, nil
}

// ParseSignerPEM is LoadSignerPEM for bytes in memory.
func ParseSignerPEM(b []byte) (*Signer, error) {
	var s Signer
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "CERTIFICATE":
			if s.Cert != nil {
				continue // a chain: the first certificate is the signer's
			}
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("itl: signer certificate: %w: %w", ErrInvalidPEM, err)
			}
			s.Cert = c
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("itl: signer key: %w: %w", ErrInvalidPEM, err)
			}
			s.Key = k
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("itl: signer key: %w: %w", ErrInvalidPEM, err)
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("itl: signer key is %T, only RSA can sign: %w", k, ErrUnsupported)
			}
			s.Key = rk
		}
	}
	switch {
	case s.Cert == nil && s.Key == nil:
		return nil, fmt.Errorf("itl: signer: no CERTIFICATE and no private key block: %w", ErrInvalidPEM)
	case s.Cert == nil:
		return nil, fmt.Errorf("itl: signer: no CERTIFICATE block: %w", ErrInvalidPEM)
	case s.Key == nil:
		return nil, fmt.Errorf("itl: signer: no RSA PRIVATE KEY or PRIVATE KEY block: %w", ErrInvalidPEM)
	}
	if _, err := s.rsaKey(); err != nil {
		return nil, err
	}
	return &s, nil
}

// LoadCertPEM reads the first certificate of a PEM file (a key in the same
// file is ignored), or a DER certificate, as CUCM exports both.
func LoadCertPEM(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("itl: certificate: %w", err)
	}
	c, err := ParseCertPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return c, nil
}

// ParseCertPEM is LoadCertPEM for bytes in memory.
func ParseCertPEM(b []byte) (*x509.Certificate, error) {
	rest := b
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("itl: certificate: %w: %w", ErrInvalidPEM, err)
			}
			return c, nil
		}
	}
	if c, err := x509.ParseCertificate(b); err == nil {
		return c, nil
	}
	return nil, fmt.Errorf("itl: certificate: no CERTIFICATE block and not DER: %w", ErrInvalidPEM)
}
