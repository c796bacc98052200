package main

// Kubernetes: the sidecar injector served beside xDS (-inject-* flags) and
// the `sidecar-init` subcommand the injector puts in every injected pod.
//
// Wiring (the lead adds these lines):
//   - options gets `inject injectOptions`; parseFlags calls
//     `injectFlags(fs, &o.inject)` before parsing and
//     `if err := o.inject.validate(); err != nil { return nil, err }` after;
//   - run, before serve:
//     if o.inject.enabled() {
//         stopInjector, err := startInjector(ctx, logger.Named("inject"), &o.inject)
//         if err != nil { logger.Error("cannot start the sidecar injector", "error", err); return 1 }
//         defer stopInjector()
//     }
//   - run dispatches the subcommand:
//     if len(args) > 0 && args[0] == "sidecar-init" { return runSidecarInit(ctx, args[1:], stdout, stderr) }
//   - usage lists the flags in injectUsage and the subcommand.

import (
	"github.com/outrigger-mesh/outrigger/controlplane/sidecarboot"

	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/controlplane/inject"
)

// injectUsage documents the injector's flags (for usage).
const injectUsage = `  -inject-addr HOST:PORT   serve the Kubernetes sidecar injector (AdmissionReview v1 at /mutate,
                           TLS) here; off when empty (default off)
  -inject-cert FILE        the injector's TLS certificate (PEM; reloaded when it changes)
  -inject-key FILE         its private key
  -inject-config FILE      the injected sidecar's settings (YAML: image, resources, logLevel,
                           xdsAddress, consulAddress, ports; see docs/kubernetes.md)
  -inject-kube-version V   the cluster's version (v1.30.2) when not asked of the API server;
                           before 1.29 the proxy is a plain container, not a native sidecar
`

// injectOptions is the injector's part of the serving command line.
type injectOptions struct {
	addr, cert, key, config, kubeVersion string
}

// injectFlags registers the -inject-* flags on fs, into o.
func injectFlags(fs *flag.FlagSet, o *injectOptions) {
	fs.StringVar(&o.addr, "inject-addr", "", "")
	fs.StringVar(&o.cert, "inject-cert", "", "")
	fs.StringVar(&o.key, "inject-key", "", "")
	fs.StringVar(&o.config, "inject-config", "", "")
	fs.StringVar(&o.kubeVersion, "inject-kube-version", "", "")
}

// enabled reports whether the injector is to be served.
func (o *injectOptions) enabled() bool { return o != nil && o.addr != "" }

// validate checks the flags go together.
func (o *injectOptions) validate() error {
	if !o.enabled() {
		if o != nil && (o.cert != "" || o.key != "" || o.config != "" || o.kubeVersion != "") {
			return errors.New("-inject-cert, -inject-key, -inject-config and -inject-kube-version need -inject-addr")
		}
		return nil
	}
	if o.cert == "" || o.key == "" {
		return errors.New("-inject-addr needs -inject-cert and -inject-key (the webhook is served over TLS)")
	}
	if o.config == "" {
		return errors.New("-inject-addr needs -inject-config (the sidecar's image and settings)")
	}
	if o.kubeVersion != "" {
		if _, err := inject.SupportsNativeSidecars(o.kubeVersion); err != nil {
			return fmt.Errorf("-inject-kube-version: %w", err)
		}
	}
	return nil
}

// startInjector loads the configuration, learns the cluster's version (the
// flag, else the API server of the pod's cluster), listens and serves the
// webhook until ctx ends or stop is called; stop waits for it.
func startInjector(ctx context.Context, logger hclog.Logger, o *injectOptions) (stop func(), err error) {
	cfg, err := inject.LoadConfig(o.config)
	if err != nil {
		return nil, err
	}
	version := o.kubeVersion
	if version == "" {
		if version, err = inject.InClusterVersion(ctx); err != nil {
			return nil, fmt.Errorf("%w (or give -inject-kube-version)", err)
		}
	}
	if cfg.NativeSidecars, err = inject.SupportsNativeSidecars(version); err != nil {
		return nil, err
	}
	h, err := inject.NewHandler(cfg, logger)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", o.addr)
	if err != nil {
		return nil, fmt.Errorf("sidecar injector: %w", err)
	}
	logger.Info("serving the sidecar injector", "address", lis.Addr().String(), "kubernetes", version,
		"native_sidecars", cfg.NativeSidecars, "image", cfg.Image)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := inject.Serve(ctx, lis, o.cert, o.key, h); err != nil {
			logger.Error("sidecar injector stopped", "error", err)
		}
	}()
	return func() { cancel(); <-done }, nil
}

const sidecarInitUsage = `outrigger-cp sidecar-init: register a pod's service and sidecar in Consul and write
the sidecar's bootstrap (what the injector runs as the pod's first init container).

Usage:
  outrigger-cp sidecar-init -service NAME -service-id ID -proxy-id ID -pod-ip IP -out FILE [flags]

Flags:
  -service NAME            the pod's service
  -service-id ID           its instance's Consul service ID ($(POD_NAME)-NAME)
  -proxy-id ID             the sidecar's Consul service ID and xDS node id
  -namespace NS            the pod's Kubernetes namespace (kept in the service meta)
  -pod-ip IP               the pod's IP: the service's and sidecar's address
  -service-port N          the app's port behind the sidecar; 0 for none (default 0)
  -proxy-port N            the sidecar's public listener port (default 20000)
  -admin-addr IP:PORT      the proxy's admin listener (default 0.0.0.0:19000); Consul checks its /ready
  -upstreams LIST          service:localPort pairs, comma-separated
  -outbound-port N         register the sidecar in transparent mode with this outbound port
  -xds-addr HOST:PORT      where the proxy reaches outrigger-cp's xDS (default 127.0.0.1:18000)
  -consul-addr HOST:PORT   Consul HTTP API (default $CONSUL_HTTP_ADDR, else 127.0.0.1:8500)
  -out FILE                where to write the bootstrap (YAML)
  -timeout D               how long to retry an unreachable Consul (default 2m)
`

// sidecarInitOptions is sidecar-init's command line.
type sidecarInitOptions struct {
	service, serviceID, proxyID, namespace, podIP string
	servicePort, proxyPort, outboundPort          int
	adminAddr, xdsAddr, consulAddr, out           string
	upstreams                                     []inject.Upstream
	timeout                                       time.Duration
}

// parseSidecarInitFlags reads sidecar-init's arguments.
func parseSidecarInitFlags(args []string, stderr io.Writer) (*sidecarInitOptions, error) {
	o := &sidecarInitOptions{}
	fs := flag.NewFlagSet("outrigger-cp sidecar-init", flag.ContinueOnError)
	fs.StringVar(&o.service, "service", "", "")
	fs.StringVar(&o.serviceID, "service-id", "", "")
	fs.StringVar(&o.proxyID, "proxy-id", "", "")
	fs.StringVar(&o.namespace, "namespace", "", "")
	fs.StringVar(&o.podIP, "pod-ip", "", "")
	fs.IntVar(&o.servicePort, "service-port", 0, "")
	fs.IntVar(&o.proxyPort, "proxy-port", inject.DefaultInboundPort, "")
	fs.IntVar(&o.outboundPort, "outbound-port", 0, "")
	fs.StringVar(&o.adminAddr, "admin-addr", "0.0.0.0:"+strconv.Itoa(inject.DefaultAdminPort), "")
	fs.StringVar(&o.xdsAddr, "xds-addr", defaultXDSAddr, "")
	fs.StringVar(&o.out, "out", "", "")
	ups := fs.String("upstreams", "", "")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "")
	consul := consulAddrFlag(fs)
	if err := parse(fs, args, sidecarInitUsage, stderr); err != nil {
		return nil, err
	}
	o.consulAddr = consul()
	for _, req := range []struct{ flag, v string }{
		{"-service", o.service}, {"-service-id", o.serviceID}, {"-proxy-id", o.proxyID}, {"-pod-ip", o.podIP}, {"-out", o.out},
	} {
		if req.v == "" {
			return nil, fmt.Errorf("%s is required (see -help)", req.flag)
		}
	}
	if net.ParseIP(o.podIP) == nil {
		return nil, fmt.Errorf("-pod-ip %q is not an IP address", o.podIP)
	}
	for _, p := range []struct {
		flag string
		v    int
		min  int
	}{{"-service-port", o.servicePort, 0}, {"-proxy-port", o.proxyPort, 1}, {"-outbound-port", o.outboundPort, 0}} {
		if p.v < p.min || p.v > 65535 {
			return nil, fmt.Errorf("%s %d is not %d-65535", p.flag, p.v, p.min)
		}
	}
	if *ups != "" {
		for _, item := range strings.Split(*ups, ",") {
			name, port, ok := strings.Cut(strings.TrimSpace(item), ":")
			p, err := strconv.ParseUint(port, 10, 16)
			if !ok || name == "" || err != nil || p == 0 {
				return nil, fmt.Errorf("-upstreams: %q is not service:port", item)
			}
			o.upstreams = append(o.upstreams, inject.Upstream{Service: name, LocalPort: int32(p)})
		}
	}
	if o.timeout <= 0 {
		return nil, fmt.Errorf("-timeout %v must be positive", o.timeout)
	}
	return o, nil
}

// registrations are the pod's service and its sidecar as Consul agent
// registrations. Both are checked through the proxy's /ready, and Consul
// removes them a minute after the pod is gone (the check fails).
func (o *sidecarInitOptions) registrations() (svc, proxy *api.AgentServiceRegistration, err error) {
	_, adminPort, err := net.SplitHostPort(o.adminAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("-admin-addr %q: %w", o.adminAddr, err)
	}
	adminURL := "http://" + net.JoinHostPort(o.podIP, adminPort)
	meta := map[string]string{"k8s-namespace": o.namespace, "k8s-service-id": o.serviceID}
	if o.namespace == "" {
		delete(meta, "k8s-namespace")
	}
	proxyMeta := map[string]string{"outrigger_admin": net.JoinHostPort(o.podIP, adminPort)}
	for k, v := range meta {
		proxyMeta[k] = v
	}
	svc = &api.AgentServiceRegistration{
		ID: o.serviceID, Name: o.service, Address: o.podIP, Port: o.servicePort, Meta: meta,
		Checks: api.AgentServiceChecks{{
			CheckID: o.serviceID + ":sidecar", Name: "sidecar ready", AliasService: o.proxyID,
		}},
	}
	pc := &api.AgentServiceConnectProxyConfig{
		DestinationServiceName: o.service,
		DestinationServiceID:   o.serviceID,
		LocalServiceAddress:    "127.0.0.1",
		LocalServicePort:       o.servicePort,
	}
	for _, u := range o.upstreams {
		pc.Upstreams = append(pc.Upstreams, api.Upstream{DestinationName: u.Service, LocalBindPort: int(u.LocalPort)})
	}
	if o.outboundPort != 0 {
		pc.Mode = api.ProxyModeTransparent
		pc.TransparentProxy = &api.TransparentProxyConfig{OutboundListenerPort: o.outboundPort}
	}
	proxy = &api.AgentServiceRegistration{
		Kind: api.ServiceKindConnectProxy, ID: o.proxyID, Name: o.service + "-sidecar-proxy",
		Address: o.podIP, Port: o.proxyPort, Meta: proxyMeta, Proxy: pc,
		Checks: api.AgentServiceChecks{{
			CheckID: o.proxyID + ":ready", Name: "proxy ready", HTTP: adminURL + "/ready",
			Interval: "5s", Timeout: "2s", DeregisterCriticalServiceAfter: "1m",
		}},
	}
	return svc, proxy, nil
}

// runSidecarInit registers the pod in Consul (retrying until -timeout while
// Consul is unreachable) and writes the proxy's bootstrap to -out.
func runSidecarInit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseSidecarInitFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "outrigger-cp sidecar-init:", err)
		return 1
	}
	if err := sidecarInit(ctx, o); err != nil {
		fmt.Fprintln(stderr, "outrigger-cp sidecar-init:", err)
		return 1
	}
	fmt.Fprintf(stdout, "registered %s and %s in Consul at %s; bootstrap written to %s\n", o.serviceID, o.proxyID, o.consulAddr, o.out)
	return 0
}

// sidecarInit is runSidecarInit's work.
func sidecarInit(ctx context.Context, o *sidecarInitOptions) error {
	// The bootstrap first: a bad address fails before anything is registered.
	bs, err := bootstrapConfig(o.proxyID, o.service, o.xdsAddr, o.adminAddr)
	if err != nil {
		return err
	}
	out, err := sidecarboot.YAML(bs)
	if err != nil {
		return err
	}
	svc, proxy, err := o.registrations()
	if err != nil {
		return err
	}
	client, err := newConsulClient(o.consulAddr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	backoff := 250 * time.Millisecond
	for {
		err = register(client, svc, proxy)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("registering in Consul at %s (gave up after %v): %w", o.consulAddr, o.timeout, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return writeFileAtomic(o.out, out)
}

// register registers the sidecar, then the service (whose alias check
// names the sidecar).
func register(c *api.Client, svc, proxy *api.AgentServiceRegistration) error {
	if err := c.Agent().ServiceRegister(proxy); err != nil {
		return fmt.Errorf("sidecar %q: %w", proxy.ID, err)
	}
	if err := c.Agent().ServiceRegister(svc); err != nil {
		return fmt.Errorf("service %q: %w", svc.ID, err)
	}
	return nil
}

// writeFileAtomic writes through a temporary file in the same directory,
// so the proxy never reads half a bootstrap.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".bootstrap-*")
	if err != nil {
		return fmt.Errorf("writing the bootstrap: %w", err)
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing the bootstrap %s: %w", path, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing the bootstrap %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing the bootstrap %s: %w", path, err)
	}
	return nil
}
