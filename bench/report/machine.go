package report

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// DescribeMachine reads the CPU model from /proc/cpuinfo, the usable CPU
// count (what `nproc` prints) and the kernel release.
func DescribeMachine() Machine {
	m := Machine{NProc: runtime.NumCPU(), GoVer: runtime.Version(), LoadAvgStart: LoadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel = CPUModel(b)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	return m
}

// CPUModel extracts "model name" (x86) or "Model"/"Hardware" (arm) from
// /proc/cpuinfo, with the count of logical CPUs listed.
func CPUModel(cpuinfo []byte) string {
	var model string
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "processor":
			n++
		case "model name", "Model", "Hardware":
			if model == "" {
				model = v
			}
		}
	}
	if model == "" {
		return ""
	}
	if n > 0 {
		return model + " (" + itoa(n) + " logical CPUs in /proc/cpuinfo)"
	}
	return model
}

func itoa(n int) string { return strconv.Itoa(n) }
