package main

import (
	"fmt"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// checker holds the clients every check shares, so HTTP/1.1 requests reuse
// one keep-alive connection and gRPC calls one HTTP/2 connection.
type checker struct {
	cfg   config
	http1 *http.Client
	h2c   *http.Client
	grpc  *grpc.ClientConn
}

func newChecker(cfg config) (*checker, error) {
	http1 := &http.Transport{Protocols: new(http.Protocols), MaxIdleConnsPerHost: 4}
	http1.Protocols.SetHTTP1(true)
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	// NewClient only parses the target; it connects on the first call.
	cc, err := grpc.NewClient(cfg.proxy, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("grpc client for %s: %w", cfg.proxy, err)
	}
	return &checker{
		cfg:   cfg,
		http1: &http.Client{Transport: http1, CheckRedirect: noRedirects},
		h2c:   &http.Client{Transport: h2c, CheckRedirect: noRedirects},
		grpc:  cc,
	}, nil
}

// noRedirects shows the proxy's answer as is.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func (c *checker) close() {
	c.http1.CloseIdleConnections()
	c.h2c.CloseIdleConnections()
	_ = c.grpc.Close()
}

// checks lists the demonstrations in the order they are shown.
func (c *checker) checks() []check {
	return []check{
		{fmt.Sprintf("HTTP/1.1: %d x GET /hello, round robin over the httpapp cluster", c.cfg.requests), c.helloRoundRobin},
		{"h2c: GET /hello with HTTP/2 prior knowledge", c.helloH2C},
		{"HTTP/1.1: POST /echo, body streamed there and back", c.echoStream},
		{"gRPC: TestService/UnaryCall through the proxy", c.grpcUnary},
		{"gRPC: TestService/StreamingOutputCall, messages flushed as they come", c.grpcServerStream},
		{"gRPC: a service with no route (grpc.health.v1.Health/Check)", c.grpcNoRoute},
		{"no route: GET /no-such-route", c.noRoute},
		{"direct_response: GET /status", c.directResponse},
	}
}
