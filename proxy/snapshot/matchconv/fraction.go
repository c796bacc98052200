package matchconv

import typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

// Denominator is a FractionalPercent's denominator as a number (100,
// 10000 or 1000000); false for a value the proto does not define.
func Denominator(d typev3.FractionalPercent_DenominatorType) (uint32, bool) {
	switch d {
	case typev3.FractionalPercent_HUNDRED:
		return 100, true
	case typev3.FractionalPercent_TEN_THOUSAND:
		return 10000, true
	case typev3.FractionalPercent_MILLION:
		return 1000000, true
	}
	return 0, false
}
