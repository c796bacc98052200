package targets

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"path/filepath"
	"time"
)

// WriteSelfSignedCert writes a self-signed ECDSA P-256 certificate for
// 127.0.0.1 and localhost, valid for a day, as cert.pem and key.pem in dir:
// what every TLS listener of the bench (HTTP/3) serves.
func WriteSelfSignedCert(dir string) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("targets: certificate key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "outrigger-bench"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", fmt.Errorf("targets: create certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("targets: marshal key: %w", err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := writeFile(certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))); err != nil {
		return "", "", err
	}
	if err := writeFile(keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// Mesh identities the mTLS target uses: Consul's shapes for the default
// namespace and a datacenter dc1 (controlplane/translate.SpiffeID and its
// SNI), a made-up trust domain.
const (
	MeshTrustDomain   = "11111111-2222-3333-4444-555555555555.consul"
	MeshDatacenter    = "dc1"
	MeshClientService = "bench-client"
	MeshServerService = "bench-server"
)

// MeshLeaf is one service's leaf certificate on disk.
type MeshLeaf struct {
	Service  string
	SpiffeID string
	CertFile string
	KeyFile  string
}

// MeshCerts are a CA and the two sidecars' leaves, as PEM files.
type MeshCerts struct {
	TrustDomain string
	// CAFile is the trust bundle (the root's certificate).
	CAFile         string
	Client, Server MeshLeaf
}

// MeshSpiffeID is the URI SAN of service's leaf, as Consul's CA writes it.
func MeshSpiffeID(service string) string {
	return "spiffe://" + MeshTrustDomain + "/ns/default/dc/" + MeshDatacenter + "/svc/" + service
}

// MeshSNI is the server name a client sidecar sends to service (Consul's
// connect.ServiceSNI for the default namespace and partition).
func MeshSNI(service string) string {
	return service + ".default." + MeshDatacenter + ".internal." + MeshTrustDomain
}

// WriteMeshCerts writes what Consul's built-in CA would hand two sidecars:
// an ECDSA P-256 root with the trust domain's SPIFFE URI, and for the
// client and the server service an ECDSA P-256 leaf signed by it with the
// service's SPIFFE ID as URI SAN, usable for both client and server auth.
// Files: ca.pem, <service>.pem and <service>-key.pem in dir, valid a day.
func WriteMeshCerts(dir string) (*MeshCerts, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("targets: mesh CA key: %w", err)
	}
	now := time.Now()
	tdURI, err := url.Parse("spiffe://" + MeshTrustDomain)
	if err != nil {
		return nil, fmt.Errorf("targets: trust domain: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Outrigger bench CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		URIs:                  []*url.URL{tdURI},
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("targets: create mesh CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("targets: parse mesh CA: %w", err)
	}
	mc := &MeshCerts{TrustDomain: MeshTrustDomain, CAFile: filepath.Join(dir, "ca.pem")}
	if err := writeFile(mc.CAFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))); err != nil {
		return nil, err
	}
	for i, leaf := range []*MeshLeaf{&mc.Client, &mc.Server} {
		service := []string{MeshClientService, MeshServerService}[i]
		*leaf = MeshLeaf{
			Service: service, SpiffeID: MeshSpiffeID(service),
			CertFile: filepath.Join(dir, service+".pem"), KeyFile: filepath.Join(dir, service+"-key.pem"),
		}
		if err := writeMeshLeaf(leaf, int64(i+2), ca, caKey, now); err != nil {
			return nil, err
		}
	}
	return mc, nil
}

// writeMeshLeaf issues l's certificate from ca and writes it with its key.
func writeMeshLeaf(l *MeshLeaf, serial int64, ca *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("targets: %s key: %w", l.Service, err)
	}
	id, err := url.Parse(l.SpiffeID)
	if err != nil {
		return fmt.Errorf("targets: %s SPIFFE ID: %w", l.Service, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: l.Service},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{id},
		DNSNames:     []string{l.Service + ".svc.default." + MeshTrustDomain[:8] + ".consul"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("targets: create %s leaf: %w", l.Service, err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("targets: marshal %s key: %w", l.Service, err)
	}
	if err := writeFile(l.CertFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))); err != nil {
		return err
	}
	return writeFile(l.KeyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})))
}

// FreeUDPPort reserves and releases a loopback UDP port.
func FreeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("targets: reserve udp port: %w", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}
