package resource

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
)

// Check walks a decoded resource and reports every set field, enum value or
// typed extension that the support table does not allow, as an
// *UnsupportedError listing all of them with their paths. Typed configs it
// unpacks also get their ValidateAll(); failures come back as an
// *InvalidError when nothing is unsupported. It also returns
// the paths of the operational fields that are set but ignored, for the
// caller to log once. Paths start at m, e.g. "static_resources.clusters[1]".
func Check(m proto.Message) (ignoredPaths []string, err error) {
	return CheckAt("", m)
}

// CheckAt is Check with every path starting at prefix.
func CheckAt(prefix string, m proto.Message) (ignoredPaths []string, err error) {
	w := &walker{}
	w.message(prefix, m.ProtoReflect())
	if len(w.unsupported) > 0 {
		return w.ignored, &UnsupportedError{Fields: w.unsupported}
	}
	if len(w.invalid) > 0 {
		return w.ignored, &InvalidError{Fields: w.invalid}
	}
	return w.ignored, nil
}

type walker struct {
	unsupported []FieldError
	invalid     []FieldError // ValidateAll failures of unpacked typed configs
	ignored     []string
}

func (w *walker) reject(path, reason string) {
	w.unsupported = append(w.unsupported, FieldError{Path: path, Reason: reason})
}

func (w *walker) message(path string, m protoreflect.Message) {
	desc := m.Descriptor()
	name := desc.FullName()
	if wellKnown[name] {
		return
	}
	if name == "google.protobuf.Any" {
		// A bare Any outside a table field is never allowed.
		w.reject(path, "google.protobuf.Any is not supported here")
		return
	}
	if len(m.GetUnknown()) > 0 {
		w.reject(path, fmt.Sprintf("%s has fields unknown to this version of the API", shortName(name)))
	}
	fields := rules[name]
	// Field-number order keeps the report deterministic.
	for _, fd := range sortedFields(desc) {
		if !m.Has(fd) {
			continue
		}
		fpath := Join(path, string(fd.Name()))
		rule, ok := fields[string(fd.Name())]
		switch {
		case !ok:
			w.reject(fpath, fmt.Sprintf("%s.%s is not supported yet", shortName(name), fd.Name()))
		case rule.Ignored:
			w.ignored = append(w.ignored, fpath)
		case rule.Leaf:
		default:
			w.field(fpath, fd, m.Get(fd), rule)
		}
	}
}

func (w *walker) field(path string, fd protoreflect.FieldDescriptor, v protoreflect.Value, rule Field) {
	switch {
	case fd.IsList():
		l := v.List()
		for i := 0; i < l.Len(); i++ {
			w.value(Index(path, i), fd, l.Get(i), rule)
		}
	case fd.IsMap():
		vd := fd.MapValue()
		var keys []protoreflect.MapKey
		v.Map().Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
			keys = append(keys, k)
			return true
		})
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			w.value(Key(path, k.String()), vd, v.Map().Get(k), rule)
		}
	default:
		w.value(path, fd, v, rule)
	}
}

// value checks one element: fd describes its kind (the map value's
// descriptor for maps).
func (w *walker) value(path string, fd protoreflect.FieldDescriptor, v protoreflect.Value, rule Field) {
	switch fd.Kind() {
	case protoreflect.EnumKind:
		if rule.Enums == nil {
			return
		}
		ev := fd.Enum().Values().ByNumber(v.Enum())
		name := fmt.Sprintf("%d", v.Enum())
		if ev != nil {
			name = string(ev.Name())
		}
		for _, allowed := range rule.Enums {
			if allowed == name {
				return
			}
		}
		w.reject(path, name+" is not supported yet")
	case protoreflect.MessageKind, protoreflect.GroupKind:
		m := v.Message()
		if m.Descriptor().FullName() == "google.protobuf.Any" {
			w.any(path, m, rule)
			return
		}
		w.message(path, m)
	}
}

// any unpacks a typed_config whose type the rule allows and checks it.
func (w *walker) any(path string, m protoreflect.Message, rule Field) {
	a, ok := m.Interface().(*anypb.Any)
	if !ok {
		// A dynamic Any: copy it into the concrete type.
		a = &anypb.Any{}
		proto.Merge(a, m.Interface())
	}
	// Like anypb, the type is what follows the last '/'.
	typeName := protoreflect.FullName(a.GetTypeUrl()[strings.LastIndexByte(a.GetTypeUrl(), '/')+1:])
	allowed := false
	for _, t := range rule.Types {
		if t == typeName {
			allowed = true
			break
		}
	}
	if !allowed {
		w.reject(path, fmt.Sprintf("%s is not supported yet", a.GetTypeUrl()))
		return
	}
	inner, err := a.UnmarshalNew()
	if err != nil {
		w.reject(path, fmt.Sprintf("cannot decode %s: %v", a.GetTypeUrl(), err))
		return
	}
	// ValidateAll does not look inside an Any, so validate what it holds.
	if v, ok := inner.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			w.invalid = append(w.invalid, pgvFields(path, inner.ProtoReflect().Descriptor(), err)...)
		}
	}
	w.message(path, inner.ProtoReflect())
}

// shortName drops the package: envoy.config.cluster.v3.Cluster -> Cluster,
// and keeps nesting: ...Bootstrap.StaticResources -> Bootstrap.StaticResources.
func shortName(n protoreflect.FullName) string {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(n)
	if err != nil {
		return string(n.Name())
	}
	pkg := string(d.ParentFile().Package())
	return strings.TrimPrefix(string(n), pkg+".")
}
