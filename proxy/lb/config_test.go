package lb

import (
	"math"
	"strings"
	"testing"
)

func TestPolicyString(t *testing.T) {
	want := map[Policy]string{
		RoundRobinPolicy:   "ROUND_ROBIN",
		LeastRequestPolicy: "LEAST_REQUEST",
		RandomPolicy:       "RANDOM",
		RingHashPolicy:     "RING_HASH",
		MaglevPolicy:       "MAGLEV",
		PeakEWMAPolicy:     "PEAK_EWMA",
		Policy(42):         "Policy(42)",
	}
	for p, w := range want {
		if got := p.String(); got != w {
			t.Errorf("Policy(%d).String() = %q, want %q", uint8(p), got, w)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // "" means valid
	}{
		{name: "zero value", cfg: Config{}},
		{name: "every policy", cfg: Config{Policy: PeakEWMAPolicy}},
		{name: "unknown policy", cfg: Config{Policy: 6}, wantErr: "unknown policy 6"},
		{name: "choice count 1", cfg: Config{ChoiceCount: 1}, wantErr: "choice count 1"},
		{name: "choice count 3", cfg: Config{ChoiceCount: 3}},
		{name: "bias 0", cfg: Config{ActiveRequestBias: new(0.0)}},
		{name: "negative bias", cfg: Config{ActiveRequestBias: new(-1.0)}, wantErr: "active request bias -1"},
		{name: "NaN bias", cfg: Config{ActiveRequestBias: new(math.NaN())}, wantErr: "active request bias NaN"},
		{name: "infinite bias", cfg: Config{ActiveRequestBias: new(math.Inf(1))}, wantErr: "active request bias +Inf"},
		{name: "ring min > max", cfg: Config{MinRingSize: 2048, MaxRingSize: 1024}, wantErr: "minimum ring size 2048 > maximum ring size 1024"},
		{name: "ring min over default max", cfg: Config{MinRingSize: 1 << 24}, wantErr: "minimum ring size 16777216 exceeds the limit"},
		{name: "ring max over limit", cfg: Config{MaxRingSize: 1 << 24}, wantErr: "maximum ring size 16777216 exceeds the limit"},
		{name: "ring min = max", cfg: Config{MinRingSize: 4096, MaxRingSize: 4096}},
		{name: "ring max below default min", cfg: Config{MaxRingSize: 512}, wantErr: "minimum ring size 1024 > maximum ring size 512"},
		{name: "table not prime", cfg: Config{TableSize: 65536}, wantErr: "table size 65536 is not a prime"},
		{name: "table 1", cfg: Config{TableSize: 1}, wantErr: "table size 1 is not a prime"},
		{name: "table prime", cfg: Config{TableSize: 251}},
		{name: "table limit", cfg: Config{TableSize: MaxTableSize}},
		{name: "table over limit", cfg: Config{TableSize: 5000101}, wantErr: "table size 5000101 exceeds the limit"},
		{name: "negative decay", cfg: Config{Decay: -1}, wantErr: "negative decay"},
		{name: "negative default rtt", cfg: Config{DefaultRTT: -1}, wantErr: "negative default RTT"},
		{name: "panic 0", cfg: Config{PanicThreshold: new(0.0)}},
		{name: "panic 100", cfg: Config{PanicThreshold: new(100.0)}},
		{name: "panic over 100", cfg: Config{PanicThreshold: new(100.5)}, wantErr: "panic threshold 100.5%"},
		{name: "panic negative", cfg: Config{PanicThreshold: new(-1.0)}, wantErr: "panic threshold -1%"},
		{name: "panic NaN", cfg: Config{PanicThreshold: new(math.NaN())}, wantErr: "panic threshold NaN%"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
			// New refuses exactly what Validate refuses.
			_, nerr := New(tt.cfg, one(hosts(1, 1)...))
			if (nerr != nil) != (err != nil) {
				t.Fatalf("New() error %v, Validate() error %v", nerr, err)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.ChoiceCount != 2 || *c.ActiveRequestBias != 1 || c.MinRingSize != 1024 || c.MaxRingSize != 8<<20 ||
		c.TableSize != 65537 || c.Decay != DefaultDecay || c.DefaultRTT != DefaultRTT ||
		c.OverprovisioningFactor != 140 || *c.PanicThreshold != 50 {
		t.Fatalf("defaults = %+v", c)
	}
	// Set values survive, 0 included where 0 means something.
	c = Config{PanicThreshold: new(0.0), ActiveRequestBias: new(0.0)}.withDefaults()
	if *c.PanicThreshold != 0 || *c.ActiveRequestBias != 0 {
		t.Fatalf("explicit zeros lost: panic %v bias %v", *c.PanicThreshold, *c.ActiveRequestBias)
	}
}

func TestNewNilHost(t *testing.T) {
	_, err := New(Config{}, []Priority{{}, {Localities: []Locality{{Name: "z1", Hosts: []*Host{NewHost("127.0.0.1:1", 1), nil}}}}})
	if err == nil || !strings.Contains(err.Error(), `priority 1 locality 0 ("z1"): host 1 is nil`) {
		t.Fatalf("New() = %v, want a nil-host error", err)
	}
}

func TestIsPrime(t *testing.T) {
	for n, want := range map[uint64]bool{0: false, 1: false, 2: true, 3: true, 4: false, 9: false, 65537: true, 65539: true, 5000011: true, 5000013: false} {
		if got := isPrime(n); got != want {
			t.Errorf("isPrime(%d) = %v", n, got)
		}
	}
}
