package outlier

// Stats are a detector's counters, Envoy's outlier_detection.* stats.
// "Detected" counts every outlier found (enforced or not, overflowing or
// not); "enforced" counts the ejections really done.
type Stats struct {
	EjectionsActive        uint64 // gauge: hosts ejected now
	EjectionsTotal         uint64 // deprecated in Envoy: consecutive-5xx and success-rate outliers within max_ejection_percent, enforced or not
	EjectionsOverflow      uint64 // ejections refused by max_ejection_percent
	EjectionsEnforcedTotal uint64

	EjectionsDetectedConsecutive5xx                uint64
	EjectionsEnforcedConsecutive5xx                uint64
	EjectionsDetectedConsecutiveGatewayFailure     uint64
	EjectionsEnforcedConsecutiveGatewayFailure     uint64
	EjectionsDetectedConsecutiveLocalOriginFailure uint64
	EjectionsEnforcedConsecutiveLocalOriginFailure uint64
	EjectionsDetectedSuccessRate                   uint64
	EjectionsEnforcedSuccessRate                   uint64
	EjectionsDetectedLocalOriginSuccessRate        uint64
	EjectionsEnforcedLocalOriginSuccessRate        uint64
	EjectionsDetectedFailurePercentage             uint64
	EjectionsEnforcedFailurePercentage             uint64
	EjectionsDetectedLocalOriginFailurePercentage  uint64
	EjectionsEnforcedLocalOriginFailurePercentage  uint64
}

// Map returns the counters under their Envoy names, without the
// "cluster.<name>.outlier_detection." prefix.
func (s Stats) Map() map[string]uint64 {
	return map[string]uint64{
		"ejections_active":                                    s.EjectionsActive,
		"ejections_total":                                     s.EjectionsTotal,
		"ejections_overflow":                                  s.EjectionsOverflow,
		"ejections_enforced_total":                            s.EjectionsEnforcedTotal,
		"ejections_detected_consecutive_5xx":                  s.EjectionsDetectedConsecutive5xx,
		"ejections_enforced_consecutive_5xx":                  s.EjectionsEnforcedConsecutive5xx,
		"ejections_detected_consecutive_gateway_failure":      s.EjectionsDetectedConsecutiveGatewayFailure,
		"ejections_enforced_consecutive_gateway_failure":      s.EjectionsEnforcedConsecutiveGatewayFailure,
		"ejections_detected_consecutive_local_origin_failure": s.EjectionsDetectedConsecutiveLocalOriginFailure,
		"ejections_enforced_consecutive_local_origin_failure": s.EjectionsEnforcedConsecutiveLocalOriginFailure,
		"ejections_detected_success_rate":                     s.EjectionsDetectedSuccessRate,
		"ejections_enforced_success_rate":                     s.EjectionsEnforcedSuccessRate,
		"ejections_detected_local_origin_success_rate":        s.EjectionsDetectedLocalOriginSuccessRate,
		"ejections_enforced_local_origin_success_rate":        s.EjectionsEnforcedLocalOriginSuccessRate,
		"ejections_detected_failure_percentage":               s.EjectionsDetectedFailurePercentage,
		"ejections_enforced_failure_percentage":               s.EjectionsEnforcedFailurePercentage,
		"ejections_detected_local_origin_failure_percentage":  s.EjectionsDetectedLocalOriginFailurePercentage,
		"ejections_enforced_local_origin_failure_percentage":  s.EjectionsEnforcedLocalOriginFailurePercentage,
	}
}

// detected and enforced return the per-reason counters.
func (s *Stats) detected(r Reason) *uint64 {
	switch r {
	case ReasonConsecutive5xx:
		return &s.EjectionsDetectedConsecutive5xx
	case ReasonConsecutiveGatewayFailure:
		return &s.EjectionsDetectedConsecutiveGatewayFailure
	case ReasonConsecutiveLocalOriginFailure:
		return &s.EjectionsDetectedConsecutiveLocalOriginFailure
	case ReasonSuccessRate:
		return &s.EjectionsDetectedSuccessRate
	case ReasonLocalOriginSuccessRate:
		return &s.EjectionsDetectedLocalOriginSuccessRate
	case ReasonFailurePercentage:
		return &s.EjectionsDetectedFailurePercentage
	case ReasonLocalOriginFailurePercentage:
		return &s.EjectionsDetectedLocalOriginFailurePercentage
	}
	return new(uint64)
}

func (s *Stats) enforced(r Reason) *uint64 {
	switch r {
	case ReasonConsecutive5xx:
		return &s.EjectionsEnforcedConsecutive5xx
	case ReasonConsecutiveGatewayFailure:
		return &s.EjectionsEnforcedConsecutiveGatewayFailure
	case ReasonConsecutiveLocalOriginFailure:
		return &s.EjectionsEnforcedConsecutiveLocalOriginFailure
	case ReasonSuccessRate:
		return &s.EjectionsEnforcedSuccessRate
	case ReasonLocalOriginSuccessRate:
		return &s.EjectionsEnforcedLocalOriginSuccessRate
	case ReasonFailurePercentage:
		return &s.EjectionsEnforcedFailurePercentage
	case ReasonLocalOriginFailurePercentage:
		return &s.EjectionsEnforcedLocalOriginFailurePercentage
	}
	return new(uint64)
}
