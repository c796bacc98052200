package outlier

// LocalFailure is a failure the proxy saw itself, before any response came:
// Envoy's local-origin errors.
type LocalFailure uint8

const (
	LocalNone           LocalFailure = iota // no local-origin failure
	LocalConnectFailure                     // no connection to the host (refused, unreachable, connect timeout)
	LocalTimeout                            // no response before the deadline
	LocalReset                              // the connection or stream was reset before a response
)

func (l LocalFailure) String() string {
	switch l {
	case LocalNone:
		return "none"
	case LocalConnectFailure:
		return "connect_failure"
	case LocalTimeout:
		return "timeout"
	case LocalReset:
		return "reset"
	}
	return "unknown"
}

// status is the HTTP status a local-origin failure (not LocalNone) counts as when local and
// external errors are not split, as Envoy maps them: a timeout is 504, a
// connect failure 503. Envoy's router reports a reset as a connect failure
// (LocalOriginConnectFailed), so it is 503 too. All three are gateway
// failures.
func (l LocalFailure) status() int {
	if l == LocalTimeout {
		return 504
	}
	return 503 // connect failure, reset, or a kind this package does not know
}

// Outcome is how one upstream request ended.
//
//   - Status != 0: the host answered with this HTTP status. It is what
//     counts (5xx is a failure, anything else a success) and, with
//     SplitExternalLocalOriginErrors, the connection counts as a
//     local-origin success; Local is then ignored (a reset in the middle of
//     the body does not undo a status that was already counted).
//   - Status == 0 and Local != LocalNone: no response, for that reason.
//     Without the split it counts as 503/504 (a gateway failure and a 5xx);
//     with it, as a local-origin failure only.
//   - The zero Outcome (e.g. the client went away first) is not reported.
type Outcome struct {
	Status int
	Local  LocalFailure
}

// Reason is why a host was ejected, named like Envoy's OutlierEjectionType.
type Reason uint8

const (
	ReasonNone Reason = iota
	ReasonConsecutive5xx
	ReasonConsecutiveGatewayFailure
	ReasonConsecutiveLocalOriginFailure
	ReasonSuccessRate
	ReasonLocalOriginSuccessRate
	ReasonFailurePercentage
	ReasonLocalOriginFailurePercentage
	numReasons
)

func (r Reason) String() string {
	switch r {
	case ReasonNone:
		return "NONE"
	case ReasonConsecutive5xx:
		return "CONSECUTIVE_5XX"
	case ReasonConsecutiveGatewayFailure:
		return "CONSECUTIVE_GATEWAY_FAILURE"
	case ReasonConsecutiveLocalOriginFailure:
		return "CONSECUTIVE_LOCAL_ORIGIN_FAILURE"
	case ReasonSuccessRate:
		return "SUCCESS_RATE"
	case ReasonLocalOriginSuccessRate:
		return "SUCCESS_RATE_LOCAL_ORIGIN"
	case ReasonFailurePercentage:
		return "FAILURE_PERCENTAGE"
	case ReasonLocalOriginFailurePercentage:
		return "FAILURE_PERCENTAGE_LOCAL_ORIGIN"
	}
	return "UNKNOWN"
}
