package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pkiFiles are the paths of all key material of one control plane. Everything
// lives in DIR/pki and is generated on first start, then reused.
type pkiFiles struct {
	Dir          string
	CACert       string
	CAKey        string
	ServingCert  string
	ServingKey   string
	AdminCert    string
	AdminKey     string
	SAPrivateKey string
	SAPublicKey  string
	// extraIPs are added to the serving certificate's IP SANs when it is generated (the kubernetes
	// Service's ClusterIP, the advertised address).
	extraIPs []net.IP
}

func newPKIFiles(dataDir string) pkiFiles {
	d := filepath.Join(dataDir, "pki")
	return pkiFiles{
		Dir:          d,
		CACert:       filepath.Join(d, "ca.crt"),
		CAKey:        filepath.Join(d, "ca.key"),
		ServingCert:  filepath.Join(d, "apiserver.crt"),
		ServingKey:   filepath.Join(d, "apiserver.key"),
		AdminCert:    filepath.Join(d, "admin.crt"),
		AdminKey:     filepath.Join(d, "admin.key"),
		SAPrivateKey: filepath.Join(d, "sa.key"),
		SAPublicKey:  filepath.Join(d, "sa.pub"),
	}
}

func (p pkiFiles) all() []string {
	return []string{p.CACert, p.CAKey, p.ServingCert, p.ServingKey, p.AdminCert, p.AdminKey, p.SAPrivateKey, p.SAPublicKey}
}

// ensure generates the key material unless every file is already present.
func (p pkiFiles) ensure() error {
	missing := false
	for _, f := range p.all() {
		if _, err := os.Stat(f); err != nil {
			missing = true
			break
		}
	}
	if !missing {
		return nil
	}
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return err
	}

	now := time.Now().Add(-1 * time.Hour)
	notAfter := now.Add(10 * 365 * 24 * time.Hour)

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "ferry-controlplane-ca"},
		NotBefore:             now,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return fmt.Errorf("create CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}

	issue := func(tmpl *x509.Certificate) ([]byte, *ecdsa.PrivateKey, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl.SerialNumber = randomSerial()
		tmpl.NotBefore = now
		tmpl.NotAfter = notAfter
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		tmpl.BasicConstraintsValid = true
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
		return der, key, err
	}

	servingDER, servingKey, err := issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{
			"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local",
		},
		IPAddresses: append([]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}, p.extraIPs...),
	})
	if err != nil {
		return fmt.Errorf("create serving certificate: %w", err)
	}

	adminDER, adminKey, err := issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return fmt.Errorf("create admin certificate: %w", err)
	}

	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}

	writes := []struct {
		path string
		pem  func() ([]byte, error)
		mode os.FileMode
	}{
		{p.CACert, func() ([]byte, error) { return certPEM(caDER), nil }, 0o644},
		{p.CAKey, func() ([]byte, error) { return keyPEM(caKey) }, 0o600},
		{p.ServingCert, func() ([]byte, error) { return certPEM(servingDER), nil }, 0o644},
		{p.ServingKey, func() ([]byte, error) { return keyPEM(servingKey) }, 0o600},
		{p.AdminCert, func() ([]byte, error) { return certPEM(adminDER), nil }, 0o644},
		{p.AdminKey, func() ([]byte, error) { return keyPEM(adminKey) }, 0o600},
		{p.SAPrivateKey, func() ([]byte, error) { return keyPEM(saKey) }, 0o600},
		{p.SAPublicKey, func() ([]byte, error) { return publicKeyPEM(saKey.Public()) }, 0o644},
	}
	for _, w := range writes {
		data, err := w.pem()
		if err != nil {
			return err
		}
		if err := writeFileAtomic(w.path, data, w.mode); err != nil {
			return err
		}
	}
	return nil
}

func randomSerial() *big.Int {
	limit := new(big.Int).Lsh(big.NewInt(1), 126)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		panic(err)
	}
	return n.Add(n, big.NewInt(1))
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func keyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func publicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// writeFileAtomic writes data next to path and renames it into place, so a
// reader never sees a half-written file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
