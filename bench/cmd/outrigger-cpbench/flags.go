package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/outrigger-mesh/outrigger/bench/cpscale"
)

type options struct {
	proxies        []int
	services       int
	upstreams      int
	hubInstances   int
	layouts        []string
	modes          []string
	streamsPerConn []int
	changes        int
	memSamples     int
	openConc       int
	syncTimeout    time.Duration
	changeTimeout  time.Duration
	deadline       time.Duration
	consul         string
	controlPlane   string
	outDir         string
	name           string
	workDir        string
	skipEmpty      bool
	inProcess      bool
	waitGC         time.Duration
	appendReport   bool
	notes          noteList
	logLevel       string
}

const usage = `outrigger-cpbench: the control plane scale bench. Real Consul, outrigger-cp as its own
process, N real ADS streams from this process; measures change -> last ACK and memory per proxy.

Usage:
  outrigger-cpbench [flags]
  outrigger-cpbench render [--out DIR] [--name NAME] [--note TEXT]   redraw the report from its .json

Every combination of the list flags is one case (a fresh Consul and outrigger-cp each).

Flags:
  --proxies LIST           sidecars, each one ADS stream (default 1000)
  --services M             services they are spread over (default 10)
  --upstreams 1|2          the hub, or the hub and the next service (default 2)
  --hub-instances H        instances of the hub every proxy calls (default 3)
  --layout LIST            pods (an address per replica) and/or shared (one per service) (default pods)
  --mode LIST              sotw and/or delta (default sotw)
  --streams-per-conn LIST  ADS streams per gRPC connection; 1 = one connection per proxy, as
                           sidecars do (default 16: outrigger-cp allows 16 streams per connection)
  --changes R              Consul changes measured per case (default 5)
  --mem-samples S          memory readings, one a second, per figure (default 5)
  --open-concurrency C     streams opening at once (default 256)
  --sync-timeout D         wait for every stream's initial config (default 3m)
  --change-timeout D       wait for one change to reach every stream (default 1m)
  --deadline D             stop the whole run after D (default 5m)
  --consul PATH            Consul binary (default: scripts/install-consul.sh)
  --outrigger-cp PATH      control plane binary (default: go build ./controlplane/cmd/outrigger-cp)
  --out DIR                where the report goes (default bench/results)
  --name NAME              report file name without .md/.json (default cpscale)
  --work DIR               keep logs and data here (default: a temporary directory, removed)
  --skip-empty             do not measure outrigger-cp on an empty mesh first
  --wait-gc D              let each memory reading wait up to D for outrigger-cp's runtime to collect
                           garbage on its own (it does every 2 minutes at the latest), so the live heap
                           is measured after the phase, not during it (default 0: take the last cycle)
  --append                 add the cases to the existing report (--out/--name .json) instead of replacing it
  --note TEXT              add a line to the report's notes (repeatable)
  --in-process             run the control plane's packages inside the bench (not the outrigger-cp
                           process), collect garbage before each reading and write heap profiles
                           (heap-before/after/changes.pb.gz) into --work: to find where memory goes
  --log-level LEVEL        debug, info, warn, error (default info)
`

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("outrigger-cpbench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	proxies := fs.String("proxies", "1000", "")
	fs.IntVar(&o.services, "services", 10, "")
	fs.IntVar(&o.upstreams, "upstreams", 2, "")
	fs.IntVar(&o.hubInstances, "hub-instances", 3, "")
	layouts := fs.String("layout", "pods", "")
	modes := fs.String("mode", "sotw", "")
	spc := fs.String("streams-per-conn", strconv.Itoa(cpscale.DefaultStreamsPerConn), "")
	fs.IntVar(&o.changes, "changes", cpscale.DefaultChanges, "")
	fs.IntVar(&o.memSamples, "mem-samples", cpscale.DefaultMemSamples, "")
	fs.IntVar(&o.openConc, "open-concurrency", cpscale.DefaultOpenConcurrency, "")
	fs.DurationVar(&o.syncTimeout, "sync-timeout", cpscale.DefaultSyncTimeout, "")
	fs.DurationVar(&o.changeTimeout, "change-timeout", cpscale.DefaultChangeTimeout, "")
	fs.DurationVar(&o.deadline, "deadline", 5*time.Minute, "")
	fs.StringVar(&o.consul, "consul", "", "")
	fs.StringVar(&o.controlPlane, "outrigger-cp", "", "")
	fs.StringVar(&o.outDir, "out", "bench/results", "")
	fs.StringVar(&o.name, "name", "cpscale", "")
	fs.StringVar(&o.workDir, "work", "", "")
	fs.BoolVar(&o.skipEmpty, "skip-empty", false, "")
	fs.BoolVar(&o.inProcess, "in-process", false, "")
	fs.DurationVar(&o.waitGC, "wait-gc", 0, "")
	fs.BoolVar(&o.appendReport, "append", false, "")
	fs.Var(&o.notes, "note", "")
	fs.StringVar(&o.logLevel, "log-level", "info", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usage)
			return nil, err
		}
		return nil, fmt.Errorf("%w (see --help)", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	var errs []error
	var err error
	if o.proxies, err = intList("--proxies", *proxies, 1); err != nil {
		errs = append(errs, err)
	}
	if o.streamsPerConn, err = intList("--streams-per-conn", *spc, 1); err != nil {
		errs = append(errs, err)
	}
	if o.layouts, err = wordList("--layout", *layouts, "pods", "shared"); err != nil {
		errs = append(errs, err)
	}
	if o.modes, err = wordList("--mode", *modes, "sotw", "delta"); err != nil {
		errs = append(errs, err)
	}
	if o.deadline <= 0 {
		errs = append(errs, fmt.Errorf("--deadline %v: must be positive", o.deadline))
	}
	if o.waitGC < 0 {
		errs = append(errs, fmt.Errorf("--wait-gc %v: must not be negative", o.waitGC))
	}
	if o.changes < 0 {
		errs = append(errs, fmt.Errorf("--changes %d: must not be negative", o.changes))
	}
	if o.name == "" || strings.ContainsAny(o.name, `/\`) {
		errs = append(errs, fmt.Errorf("--name %q: want a file name without directory", o.name))
	}
	if len(errs) == 0 {
		for _, c := range o.cases() {
			if err := c.Layout.Validate(); err != nil {
				errs = append(errs, err)
				break
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w (see --help)", err)
	}
	return o, nil
}

// cases is the cross product of the list flags, smallest first.
func (o *options) cases() []cpscale.Config {
	var out []cpscale.Config
	for _, n := range o.proxies {
		for _, layout := range o.layouts {
			for _, mode := range o.modes {
				for _, spc := range o.streamsPerConn {
					out = append(out, cpscale.Config{
						Layout: cpscale.Layout{Proxies: n, Services: o.services, Upstreams: o.upstreams,
							HubInstances: o.hubInstances, Shared: layout == "shared"},
						Delta: mode == "delta", StreamsPerConn: spc, Changes: o.changes, MemSamples: o.memSamples,
						OpenConcurrency: o.openConc, SyncTimeout: o.syncTimeout, ChangeTimeout: o.changeTimeout,
						SkipEmpty: o.skipEmpty, InProcess: o.inProcess, WaitGC: o.waitGC,
					})
				}
			}
		}
	}
	return out
}

// intList parses "1000,10000"; every value must be at least lo.
func intList(flagName, s string, lo int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < lo {
			return nil, fmt.Errorf("%s %q: want comma-separated integers ≥ %d", flagName, s, lo)
		}
		out = append(out, n)
	}
	return out, nil
}

// wordList parses "a,b" where each word is one of allowed.
func wordList(flagName, s string, allowed ...string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		ok := false
		for _, a := range allowed {
			ok = ok || f == a
		}
		if !ok {
			return nil, fmt.Errorf("%s %q: want a comma-separated list of %s", flagName, s, strings.Join(allowed, ", "))
		}
		out = append(out, f)
	}
	return out, nil
}

// noteList collects repeated --note flags.
type noteList []string

// String implements flag.Value.
func (n *noteList) String() string { return strings.Join(*n, "; ") }

// Set implements flag.Value: each --note adds a line.
func (n *noteList) Set(v string) error {
	if strings.TrimSpace(v) == "" {
		return errors.New("an empty note")
	}
	*n = append(*n, v)
	return nil
}
