package lb

// Picker chooses the host for the next request. It returns nil when no host
// is available. Implementations are safe for concurrent use and hold an
// immutable host list: a change of hosts builds a new Picker.
type Picker interface {
	Pick() *Host
}
