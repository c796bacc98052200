package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/outrigger-mesh/outrigger/bench/report"
)

// runRender redraws the Markdown report and plots from a run's JSON, so a
// change to the report's layout does not need a new run.
func runRender(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "bench/results/latest.json", "the run's JSON record")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	b, err := os.ReadFile(*in)
	if err != nil {
		fmt.Fprintln(stderr, "outrigger-bench render:", err)
		return 1
	}
	var res report.Run
	if err := json.Unmarshal(b, &res); err != nil {
		fmt.Fprintf(stderr, "outrigger-bench render: %s: %v\n", *in, err)
		return 1
	}
	o := &options{outDir: filepath.Dir(*in), name: strings.TrimSuffix(filepath.Base(*in), ".json")}
	path, err := writeReport(o, &res)
	if err != nil {
		fmt.Fprintln(stderr, "outrigger-bench render:", err)
		return 1
	}
	fmt.Fprintln(stdout, "wrote", path)
	return 0
}
