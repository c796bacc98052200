package translate

import (
	"strings"
	"testing"
)

func TestMeshTracingConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg      map[string]any
		sampling float64
		err      string
	}{
		{cfg: nil},
		{cfg: map[string]any{"protocol": "http"}},
		{cfg: map[string]any{ConfigOTLPAddress: "10.0.0.5:4317"}, sampling: 100},
		{cfg: map[string]any{ConfigOTLPAddress: "[::1]:4317", ConfigTraceSampling: 1.5}, sampling: 1.5},
		{cfg: map[string]any{ConfigOTLPAddress: "10.0.0.5:4317", ConfigTraceSampling: "25"}, sampling: 25},
		{cfg: map[string]any{ConfigOTLPAddress: "collector:4317"}, err: "want an IP:port"},
		{cfg: map[string]any{ConfigOTLPAddress: "10.0.0.5"}, err: "want an IP:port"},
		{cfg: map[string]any{ConfigOTLPAddress: 4317}, err: "want an IP:port"},
		{cfg: map[string]any{ConfigOTLPAddress: "10.0.0.5:70000"}, err: "want an IP:port"},
		{cfg: map[string]any{ConfigOTLPAddress: "10.0.0.5:4317", ConfigTraceSampling: 101.0}, err: "from 0 to 100"},
		{cfg: map[string]any{ConfigOTLPAddress: "10.0.0.5:4317", ConfigTraceSampling: "lots"}, err: "from 0 to 100"},
	} {
		got, err := meshTracing(tc.cfg)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: %v, want an error with %q", tc.cfg, err, tc.err)
			}
		case err != nil:
			t.Errorf("%v: %v", tc.cfg, err)
		case tc.sampling == 0 && got != nil:
			t.Errorf("%v: tracing on without an address", tc.cfg)
		case tc.sampling != 0 && (got == nil || got.sampling != tc.sampling):
			t.Errorf("%v: %+v, want sampling %v", tc.cfg, got, tc.sampling)
		}
	}
}
