package snapshot

import (
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	httplrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netlrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/outrigger-mesh/outrigger/proxy/ratelimit"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

func bucketPB(max uint32, fill time.Duration) *typev3.TokenBucket {
	return &typev3.TokenBucket{MaxTokens: max, FillInterval: durationpb.New(fill)}
}

func TestLocalRateLimitConversion(t *testing.T) {
	full := &httplrlv3.LocalRateLimit{
		StatPrefix:  "rl",
		Status:      &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
		TokenBucket: &typev3.TokenBucket{MaxTokens: 5, TokensPerFill: wrapperspb.UInt32(2), FillInterval: durationpb.New(time.Second)},
		FilterEnabled: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{
			Numerator: 50, Denominator: typev3.FractionalPercent_TEN_THOUSAND}},
		FilterEnforced: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{
			Numerator: 1, Denominator: typev3.FractionalPercent_MILLION}},
		ResponseHeadersToAdd:    []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-rl", Value: "1"}}},
		EnableXRatelimitHeaders: ratelimitcommonv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03,
	}
	c := &converter{}
	f := c.localRateLimitFilter("f", "lrl", mustAny(t, full))
	if err := c.err(); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(*ratelimit.Filter); !ok {
		t.Fatalf("got %T", f)
	}
	l := c.localRateLimitPerRoute("r", mustAny(t, full)).(*ratelimit.Limiter)
	cfg := l.Config()
	if cfg.Status != 503 || cfg.Bucket.TokensPerFill != 2 || cfg.Enabled.Denominator != 10000 || cfg.Enforced.Denominator != 1000000 ||
		!cfg.XRateLimitHeaders || len(cfg.ResponseHeaders) != 1 {
		t.Fatalf("converted %+v", cfg)
	}

	for _, tc := range []struct {
		name     string
		m        *httplrlv3.LocalRateLimit
		perRoute bool
		want     string
	}{
		{"per-route without bucket", &httplrlv3.LocalRateLimit{StatPrefix: "x"}, true, "r.token_bucket: a per-route local rate limit needs its own token bucket"},
		{"fast fill", &httplrlv3.LocalRateLimit{StatPrefix: "x", TokenBucket: bucketPB(1, 10*time.Millisecond)}, false, "token_bucket.fill_interval: 10ms is shorter"},
		{"zero per fill", &httplrlv3.LocalRateLimit{StatPrefix: "x", TokenBucket: &typev3.TokenBucket{MaxTokens: 1, TokensPerFill: wrapperspb.UInt32(0), FillInterval: durationpb.New(time.Second)}}, false, "tokens_per_fill: must be greater than 0"},
		{"status 200", &httplrlv3.LocalRateLimit{StatPrefix: "x", Status: &typev3.HttpStatus{Code: typev3.StatusCode_OK}}, false, "status.code: 200"},
		{"no prefix", &httplrlv3.LocalRateLimit{}, false, "stat_prefix: is required"},
		{"bad denominator", &httplrlv3.LocalRateLimit{StatPrefix: "x", FilterEnabled: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Denominator: 7}}}, false, "filter_enabled.default_value.denominator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &converter{}
			p := "f"
			if tc.perRoute {
				p = "r"
				c.localRateLimitPerRoute(p, mustAny(t, tc.m))
			} else {
				c.localRateLimitFilter(p, "lrl", mustAny(t, tc.m))
			}
			if err := c.err(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	// Another message type in the slot.
	c = &converter{}
	c.localRateLimitFilter("f", "lrl", mustAny(t, &netlrlv3.LocalRateLimit{}))
	c.localRateLimitPerRoute("r", mustAny(t, &netlrlv3.LocalRateLimit{}))
	c.localRateLimitNetworkFilter("n", mustAny(t, &httplrlv3.LocalRateLimit{}))
	if err := c.err(); err == nil || strings.Count(err.Error(), "is not allowed here") != 3 {
		t.Fatalf("wrong types: %v", err)
	}
}

func TestNetworkLocalRateLimitConversion(t *testing.T) {
	c := &converter{}
	f := c.localRateLimitNetworkFilter("n", mustAny(t, &netlrlv3.LocalRateLimit{
		StatPrefix: "tcp", TokenBucket: bucketPB(1, time.Second),
		RuntimeEnabled: &corev3.RuntimeFeatureFlag{DefaultValue: wrapperspb.Bool(false), RuntimeKey: "k"},
	}))
	if err := c.err(); err != nil {
		t.Fatal(err)
	}
	// runtime_enabled false: every connection is admitted.
	for range 3 {
		if !f.Admit(nil) {
			t.Fatal("disabled limiter refused")
		}
	}
	c = &converter{}
	c.localRateLimitNetworkFilter("n", mustAny(t, &netlrlv3.LocalRateLimit{StatPrefix: "tcp", TokenBucket: bucketPB(1, time.Millisecond)}))
	if err := c.err(); err == nil || !strings.Contains(err.Error(), "n.token_bucket.fill_interval") {
		t.Fatalf("err %v", err)
	}
	c = &converter{}
	c.localRateLimitNetworkFilter("n", mustAny(t, &netlrlv3.LocalRateLimit{TokenBucket: bucketPB(1, time.Second)}))
	if err := c.err(); err == nil || !strings.Contains(err.Error(), "stat_prefix") {
		t.Fatalf("err %v", err)
	}
}

// The support table refuses what the filter does not implement, with the
// field's path.
func TestLocalRateLimitUnsupportedFields(t *testing.T) {
	for _, tc := range []struct {
		m    *httplrlv3.LocalRateLimit
		want string
	}{
		{&httplrlv3.LocalRateLimit{StatPrefix: "x", LocalRateLimitPerDownstreamConnection: true}, "local_rate_limit_per_downstream_connection"},
		{&httplrlv3.LocalRateLimit{StatPrefix: "x", Descriptors: []*ratelimitcommonv3.LocalRateLimitDescriptor{{
			Entries: []*ratelimitcommonv3.RateLimitDescriptor_Entry{{Key: "k", Value: "v"}}, TokenBucket: bucketPB(1, time.Second)}}}, "descriptors"},
		{&httplrlv3.LocalRateLimit{StatPrefix: "x", FilterEnabled: &corev3.RuntimeFractionalPercent{RuntimeKey: "k", DefaultValue: &typev3.FractionalPercent{}}}, "runtime_key"},
	} {
		f := &hcmv3.HttpFilter{Name: "lrl", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, tc.m)}}
		_, err := resource.Validate("f", f)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err %v, want %q", err, tc.want)
		}
	}
}
