package itl

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"fmt"
)

// Encryption is the key and cipher metadata of an .enc.sgn header
// (itl-format.md §7, certutils' layout). Tags 18, 22 and 24 have no known
// meaning and are only shown in dumps. Part of a File: read-only after
// Parse and safe for concurrent reads.
type Encryption struct {
	// IV is the AES-CBC initialisation vector (tag 19).
	IV []byte
	// Padding is the number of pad bytes appended to the plaintext before
	// encryption (tag 20), 1 to 16.
	Padding int
	// KeySize is tag 23: 128 (the AES key) in certutils before 2021, the
	// wrapping RSA key's size since.
	KeySize int
	// KeyAlgorithm is tag 24 (1 in every known file).
	KeyAlgorithm byte
	// Key is the AES key wrapped with RSA PKCS#1 v1.5 under the phone's
	// certificate (tag 25).
	Key []byte
	// HashAlgorithm (tag 26) and Hash (tag 27) are the digest of the
	// plaintext before padding; zero and nil when absent.
	HashAlgorithm Digest
	Hash          []byte
}

// SignEncrypted encrypts plaintext for one phone and signs the result, as
// CUCM does for SEP<MAC>.cnf.xml.enc.sgn with "TFTP Encrypted Config": a
// fresh AES-128 key and IV, the key wrapped with the phone certificate's
// RSA key, the plaintext padded with 0x0D to the block size (a full block
// when already aligned) and its digest recorded. The layout is the current
// certutils one (ENCRYPTIONINFO holds the IV and key groups; the digest
// follows at top level); phones decrypt those files.
func SignEncrypted(name string, plaintext []byte, phone *x509.Certificate, signer *Signer, digest Digest) ([]byte, error) {
	fail := func(err error) ([]byte, error) { return nil, fmt.Errorf("itl: encrypt %q: %w", name, err) }
	if phone == nil {
		return fail(fmt.Errorf("no phone certificate: %w", ErrUnsupported))
	}
	phoneKey, ok := phone.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fail(fmt.Errorf("phone key is %T, only RSA can wrap the AES key: %w", phone.PublicKey, ErrUnsupported))
	}
	pub, err := signer.rsaKey()
	if err != nil {
		return fail(err)
	}
	if digest == 0 {
		digest = SHA1
	}
	if digest != SHA1 && digest != SHA512 {
		return fail(fmt.Errorf("digest %s: want SHA-1 or SHA-512: %w", digest, ErrUnsupported))
	}
	key := make([]byte, 16)
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(key); err != nil {
		return fail(err)
	}
	if _, err := rand.Read(iv); err != nil {
		return fail(err)
	}
	// PKCS#1 v1.5 encryption is what the format prescribes; phones know no
	// other wrapping.
	wrapped, err := rsa.EncryptPKCS1v15(rand.Reader, phoneKey, key) //nolint:staticcheck // required by the file format
	if err != nil {
		return fail(err)
	}
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	buf := make([]byte, len(plaintext)+pad)
	copy(buf, plaintext)
	for i := len(plaintext); i < len(buf); i++ {
		buf[i] = '\r'
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return fail(err)
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(buf, buf)
	hh := digest.Hash().New()
	hh.Write(plaintext)

	var ivInfo, keyInfo, enc []byte
	ivInfo = append(ivInfo, tagEncUnknown1, 0, 1, 0)
	ivInfo, _ = appendTLV(ivInfo, tagEncIV, iv)
	ivInfo = appendU16(ivInfo, tagEncPadding, pad)
	keyInfo = append(keyInfo, tagEncUnknown2, 0, 1, 0)
	keyInfo = appendU16(keyInfo, tagEncKeySize, phoneKey.N.BitLen())
	keyInfo = append(keyInfo, tagEncKeyAlgo, 0, 1, 1)
	if keyInfo, err = appendTLV(keyInfo, tagEncKey, wrapped); err != nil {
		return fail(err)
	}
	infoLen := 3 + len(ivInfo) + 3 + len(keyInfo)
	enc = append(enc, tagEncInfo, byte(infoLen>>8), byte(infoLen))
	enc = append(enc, tagEncIVInfo, byte(len(ivInfo)>>8), byte(len(ivInfo)))
	enc = append(enc, ivInfo...)
	enc = append(enc, tagEncKeyInfo, byte(len(keyInfo)>>8), byte(len(keyInfo)))
	enc = append(enc, keyInfo...)
	enc = append(enc, tagEncHashAlgo, 0, 1, byte(digest))
	enc, _ = appendTLV(enc, tagEncHash, hh.Sum(nil))

	h := headerFields{version: fileVersion(KindENCSGN), signer: signer, pub: pub, digest: digest, filename: name, enc: enc}
	out, err := h.sign(buf)
	if err != nil {
		return fail(err)
	}
	return selfCheck(name, out, KindENCSGN, pub)
}

// Decrypt recovers the plaintext of an .enc.sgn with the phone's private
// key, and checks it against the digest in the header when there is one.
// It does not check the signature: call VerifyWith for that.
func (f *File) Decrypt(key crypto.Decrypter) ([]byte, error) {
	e := f.Encryption
	if f.Kind != KindENCSGN || e == nil {
		return nil, fmt.Errorf("itl: decrypt %s: not an encrypted file: %w", f.Kind, ErrDecrypt)
	}
	// nil options: PKCS#1 v1.5, the only wrapping the format knows.
	aesKey, err := key.Decrypt(rand.Reader, e.Key, nil)
	if err != nil {
		return nil, fmt.Errorf("itl: decrypt: unwrap the AES key: %w: %w", ErrDecrypt, err)
	}
	block, err := aes.NewCipher(aesKey)
	if err != nil {
		return nil, fmt.Errorf("itl: decrypt: %d-byte AES key: %w: %w", len(aesKey), ErrDecrypt, err)
	}
	if len(f.Payload) == 0 || len(f.Payload)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("itl: decrypt: ciphertext is %d bytes, not a whole number of blocks: %w", len(f.Payload), ErrDecrypt)
	}
	if e.Padding < 1 || e.Padding > aes.BlockSize || e.Padding > len(f.Payload) {
		return nil, fmt.Errorf("itl: decrypt: ENCRYPTIONPADDING %d, want 1 to %d: %w", e.Padding, aes.BlockSize, ErrDecrypt)
	}
	plain := bytes.Clone(f.Payload)
	cipher.NewCBCDecrypter(block, e.IV).CryptBlocks(plain, plain)
	plain = plain[:len(plain)-e.Padding]
	if e.Hash != nil {
		hf := e.HashAlgorithm.Hash()
		if hf == 0 {
			return nil, fmt.Errorf("itl: decrypt: digest code %d: %w", e.HashAlgorithm, ErrUnsupported)
		}
		h := hf.New()
		h.Write(plain)
		if subtle.ConstantTimeCompare(h.Sum(nil), e.Hash) != 1 {
			return nil, fmt.Errorf("itl: decrypt: plaintext does not match ENCRYPTIONHASH (%s): %w", e.HashAlgorithm, ErrDecrypt)
		}
	}
	return plain, nil
}
