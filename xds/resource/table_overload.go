package resource

import (
	"google.golang.org/protobuf/reflect/protoreflect"

	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/cgroup_memory/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/cpu_utilization/v3"
	// Registered so that a connection limit is refused by this table, with
	// its path, instead of failing to decode.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/fixed_heap/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/injected_resource/v3"
)

// Overload manager resource monitors. Without overload actions (refused)
// these only measure, so they are accepted and do nothing. The
// downstream-connections monitor is different: on its own it caps the
// proxy's connections in Envoy, which Outrigger does not implement, so it
// is refused rather than ignored.
const (
	FixedHeapMonitor      protoreflect.FullName = "envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig"
	InjectedMonitor       protoreflect.FullName = "envoy.extensions.resource_monitors.injected_resource.v3.InjectedResourceConfig"
	CgroupMemoryMonitor   protoreflect.FullName = "envoy.extensions.resource_monitors.cgroup_memory.v3.CgroupMemoryConfig"
	CPUUtilizationMonitor protoreflect.FullName = "envoy.extensions.resource_monitors.cpu_utilization.v3.CpuUtilizationConfig"
)

var overloadExtensions = []Extension{
	{"envoy.resource_monitors.fixed_heap", FixedHeapMonitor, "Bootstrap overload_manager.resource_monitors[].typed_config (measures only: overload actions are refused)"},
	{"envoy.resource_monitors.injected_resource", InjectedMonitor, "Bootstrap overload_manager.resource_monitors[].typed_config (measures only)"},
	{"envoy.resource_monitors.cgroup_memory", CgroupMemoryMonitor, "Bootstrap overload_manager.resource_monitors[].typed_config (measures only)"},
	{"envoy.resource_monitors.cpu_utilization", CPUUtilizationMonitor, "Bootstrap overload_manager.resource_monitors[].typed_config (measures only)"},
}

var overloadMessages = []Message{
	{"envoy.config.overload.v3.ResourceMonitor", map[string]Field{
		"name":         supported,
		"typed_config": anyOf(FixedHeapMonitor, InjectedMonitor, CgroupMemoryMonitor, CPUUtilizationMonitor),
	}},
	{FixedHeapMonitor, map[string]Field{"max_heap_size_bytes": ignored, "max_heap_size_bytes_runtime": ignored}},
	{InjectedMonitor, map[string]Field{"filename": ignored}},
	{CgroupMemoryMonitor, map[string]Field{"max_memory_bytes": ignored}},
	{CPUUtilizationMonitor, map[string]Field{"mode": ignored}},
}
