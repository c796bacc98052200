package jwtauthn

import "net/http"

// Status is the outcome of checking a request's tokens, with Envoy's
// (jwt_verify_lib's) meanings and texts.
type Status uint8

// The statuses the filter produces.
const (
	OK Status = iota
	JwtMissed
	JwtNotYetValid
	JwtExpired
	JwtBadFormat
	JwtHeaderParseError
	JwtHeaderBadAlg
	JwtHeaderNotImplementedAlg
	JwtHeaderBadKid
	JwtPayloadParseError
	JwtSignatureParseError
	JwtUnknownIssuer
	JwtAudienceNotAllowed
	JwtVerificationFail
	JwksNoValidKeys
	JwksKidAlgMismatch
	JwksFetchFail
)

var statusText = [...]string{
	OK:                         "OK",
	JwtMissed:                  "Jwt is missing",
	JwtNotYetValid:             "Jwt not yet valid",
	JwtExpired:                 "Jwt is expired",
	JwtBadFormat:               "Jwt is not in the form of Header.Payload.Signature",
	JwtHeaderParseError:        "Jwt header is an invalid Base64url input or an invalid JSON",
	JwtHeaderBadAlg:            "Jwt header [alg] field is not a string",
	JwtHeaderNotImplementedAlg: "Jwt header [alg] field value is invalid",
	JwtHeaderBadKid:            "Jwt header [kid] field is not a string",
	JwtPayloadParseError:       "Jwt payload is an invalid Base64 or an invalid JSON",
	JwtSignatureParseError:     "Jwt signature is an invalid Base64",
	JwtUnknownIssuer:           "Jwt issuer is not configured",
	JwtAudienceNotAllowed:      "Audiences in Jwt are not allowed",
	JwtVerificationFail:        "Jwt verification fails",
	JwksNoValidKeys:            "Jwks doesn't have any valid public key",
	JwksKidAlgMismatch:         "Jwks doesn't have key to match kid or alg from Jwt",
	JwksFetchFail:              "Jwks remote fetch is failed",
}

// String is Envoy's text for s, the body of a failure reply.
func (s Status) String() string {
	if int(s) < len(statusText) {
		return statusText[s]
	}
	return "unknown status"
}

// HTTPStatus is the reply's status for a failure: 403 when the audience is
// not allowed, 401 otherwise (as Envoy).
func (s Status) HTTPStatus() int {
	if s == JwtAudienceNotAllowed {
		return http.StatusForbidden
	}
	return http.StatusUnauthorized
}
