package snapshot

import (
	"encoding/hex"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/outrigger-mesh/outrigger/proxy/healthcheck"
	"github.com/outrigger-mesh/outrigger/proxy/outlier"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// outlierDetection converts outlier_detection: Envoy's defaults, with every
// field the proto sets written over them (a set 0 means 0).
func (c *converter) outlierDetection(p string, od *clusterv3.OutlierDetection) *outlier.Config {
	cfg := outlier.DefaultConfig()
	u32 := func(dst *uint32, v *wrapperspb.UInt32Value) {
		if v != nil {
			*dst = v.GetValue()
		}
	}
	u32(&cfg.Consecutive5xx, od.GetConsecutive_5Xx())
	u32(&cfg.ConsecutiveGatewayFailure, od.GetConsecutiveGatewayFailure())
	u32(&cfg.ConsecutiveLocalOriginFailure, od.GetConsecutiveLocalOriginFailure())
	u32(&cfg.EnforcingConsecutive5xx, od.GetEnforcingConsecutive_5Xx())
	u32(&cfg.EnforcingConsecutiveGatewayFailure, od.GetEnforcingConsecutiveGatewayFailure())
	u32(&cfg.EnforcingConsecutiveLocalOriginFailure, od.GetEnforcingConsecutiveLocalOriginFailure())
	u32(&cfg.EnforcingSuccessRate, od.GetEnforcingSuccessRate())
	u32(&cfg.EnforcingLocalOriginSuccessRate, od.GetEnforcingLocalOriginSuccessRate())
	u32(&cfg.EnforcingFailurePercentage, od.GetEnforcingFailurePercentage())
	u32(&cfg.EnforcingFailurePercentageLocalOrigin, od.GetEnforcingFailurePercentageLocalOrigin())
	u32(&cfg.MaxEjectionPercent, od.GetMaxEjectionPercent())
	u32(&cfg.SuccessRateMinimumHosts, od.GetSuccessRateMinimumHosts())
	u32(&cfg.SuccessRateRequestVolume, od.GetSuccessRateRequestVolume())
	u32(&cfg.SuccessRateStdevFactor, od.GetSuccessRateStdevFactor())
	u32(&cfg.FailurePercentageThreshold, od.GetFailurePercentageThreshold())
	u32(&cfg.FailurePercentageMinimumHosts, od.GetFailurePercentageMinimumHosts())
	u32(&cfg.FailurePercentageRequestVolume, od.GetFailurePercentageRequestVolume())
	cfg.SplitExternalLocalOriginErrors = od.GetSplitExternalLocalOriginErrors()
	if od.GetInterval() != nil {
		cfg.Interval = od.GetInterval().AsDuration()
	}
	if od.GetBaseEjectionTime() != nil {
		cfg.BaseEjectionTime = od.GetBaseEjectionTime().AsDuration()
	}
	if od.GetMaxEjectionTime() != nil {
		cfg.MaxEjectionTime = od.GetMaxEjectionTime().AsDuration()
	}
	if od.GetMaxEjectionTimeJitter() != nil {
		cfg.MaxEjectionTimeJitter = od.GetMaxEjectionTimeJitter().AsDuration()
	}
	if v := od.GetSuccessfulActiveHealthCheckUnejectHost(); v != nil {
		cfg.SuccessfulActiveHealthCheckUnejectHost = v.GetValue()
	}
	if v := od.GetAlwaysEjectOneHost(); v != nil {
		cfg.AlwaysEjectOneHost = v.GetValue()
	}
	if od.GetDetectDegradedHosts().GetValue() {
		c.fail(resource.Join(p, "detect_degraded_hosts"), "is not supported yet")
	}
	if err := cfg.Validate(); err != nil {
		c.fail(p, "%v", err)
	}
	return &cfg
}

// healthChecks converts health_checks.
func (c *converter) healthChecks(p string, hcs []*corev3.HealthCheck) []healthcheck.Config {
	var out []healthcheck.Config
	for i, hc := range hcs {
		hp := resource.Index(resource.Join(p, "health_checks"), i)
		cfg := healthcheck.Config{
			Timeout:                  duration(hc.GetTimeout(), 0),
			Interval:                 duration(hc.GetInterval(), 0),
			InitialJitter:            duration(hc.GetInitialJitter(), 0),
			IntervalJitter:           duration(hc.GetIntervalJitter(), 0),
			IntervalJitterPercent:    hc.GetIntervalJitterPercent(),
			UnhealthyThreshold:       hc.GetUnhealthyThreshold().GetValue(),
			HealthyThreshold:         hc.GetHealthyThreshold().GetValue(),
			NoTrafficInterval:        duration(hc.GetNoTrafficInterval(), 0),
			NoTrafficHealthyInterval: duration(hc.GetNoTrafficHealthyInterval(), 0),
			UnhealthyInterval:        duration(hc.GetUnhealthyInterval(), 0),
			UnhealthyEdgeInterval:    duration(hc.GetUnhealthyEdgeInterval(), 0),
			HealthyEdgeInterval:      duration(hc.GetHealthyEdgeInterval(), 0),
		}
		if v := hc.GetReuseConnection(); v != nil {
			b := v.GetValue()
			cfg.ReuseConnection = &b
		}
		switch {
		case hc.GetHttpHealthCheck() != nil:
			h := hc.GetHttpHealthCheck()
			pp := resource.Join(hp, "http_health_check")
			check := &healthcheck.HTTPCheck{
				Host:              h.GetHost(),
				Path:              h.GetPath(),
				ExpectedStatuses:  statusRanges(h.GetExpectedStatuses()),
				RetriableStatuses: statusRanges(h.GetRetriableStatuses()),
			}
			if m := h.GetMethod(); m != corev3.RequestMethod_METHOD_UNSPECIFIED {
				check.Method = m.String()
			}
			switch h.GetCodecClientType() {
			case typev3.CodecClientType_HTTP1:
			case typev3.CodecClientType_HTTP2:
				check.Protocol = healthcheck.HTTP2
			default:
				c.fail(resource.Join(pp, "codec_client_type"), "%s is not supported (HTTP1 or HTTP2)", h.GetCodecClientType())
			}
			for j, hv := range h.GetRequestHeadersToAdd() {
				hvp := resource.Index(resource.Join(pp, "request_headers_to_add"), j)
				if hv.GetAppendAction() != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD || hv.GetAppend() != nil {
					c.fail(hvp, "only plain additions are supported in a health check")
				}
				name, v := c.literalHeader(hvp, hv.GetHeader())
				check.RequestHeaders = append(check.RequestHeaders, healthcheck.Header{Name: name, Value: v})
			}
			if h.GetSend() != nil || len(h.GetReceive()) > 0 {
				c.fail(pp, "send and receive payloads are not supported in HTTP health checks yet")
			}
			cfg.HTTP = check
		case hc.GetGrpcHealthCheck() != nil:
			g := hc.GetGrpcHealthCheck()
			check := &healthcheck.GRPCCheck{ServiceName: g.GetServiceName(), Authority: g.GetAuthority()}
			for j, hv := range g.GetInitialMetadata() {
				name, v := c.literalHeader(resource.Index(resource.Join(hp, "grpc_health_check.initial_metadata"), j), hv.GetHeader())
				check.InitialMetadata = append(check.InitialMetadata, healthcheck.Header{Name: name, Value: v})
			}
			cfg.GRPC = check
		case hc.GetTcpHealthCheck() != nil:
			t := hc.GetTcpHealthCheck()
			pp := resource.Join(hp, "tcp_health_check")
			check := &healthcheck.TCPCheck{}
			if s := t.GetSend(); s != nil {
				check.Send = c.payload(resource.Join(pp, "send"), s)
			}
			for j, r := range t.GetReceive() {
				check.Receive = append(check.Receive, c.payload(resource.Index(resource.Join(pp, "receive"), j), r))
			}
			cfg.TCP = check
		default:
			c.fail(hp, "http_health_check, grpc_health_check or tcp_health_check is required")
			continue
		}
		if err := cfg.Validate(); err != nil {
			c.fail(hp, "%v", err)
		}
		out = append(out, cfg)
	}
	return out
}

// payload is a health check Payload: text is hex, as in Envoy.
func (c *converter) payload(p string, pl *corev3.HealthCheck_Payload) []byte {
	if pl.GetText() != "" {
		b, err := hex.DecodeString(pl.GetText())
		if err != nil {
			c.fail(resource.Join(p, "text"), "%q: must be hex-encoded bytes", pl.GetText())
		}
		return b
	}
	return pl.GetBinary()
}

func statusRanges(rs []*typev3.Int64Range) []healthcheck.StatusRange {
	var out []healthcheck.StatusRange
	for _, r := range rs {
		out = append(out, healthcheck.StatusRange{Start: int(r.GetStart()), End: int(r.GetEnd())})
	}
	return out
}
