package inject

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/hashicorp/go-hclog"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Path is where the webhook is served.
const Path = "/mutate"

// PathNamespaceEnabled is the webhook's path for pods whose namespace
// carries NamespaceLabel=enabled. The chart's MutatingWebhookConfiguration
// has two webhooks: one selecting labelled namespaces that calls this path,
// one selecting the rest that calls Path (so only the pod annotation opts
// in there). The admission request carries no namespace labels, and this
// way the injector needs no read access to namespaces. (A webhook's path
// may not carry a query, so the difference is in the path.)
const PathNamespaceEnabled = Path + "/" + namespaceEnabledSegment

const namespaceEnabledSegment = "namespace-enabled"

// maxReviewBytes bounds an AdmissionReview body (the API server's own
// request limit is 3 MiB).
const maxReviewBytes = 6 << 20

// Handler serves AdmissionReview v1 requests for pods.
type Handler struct {
	cfg Config
	log hclog.Logger
}

// NewHandler checks cfg and returns the webhook. A nil logger discards.
func NewHandler(cfg Config, logger hclog.Logger) (*Handler, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Handler{cfg: cfg, log: logger}, nil
}

// ServeHTTP answers one AdmissionReview. Only a request that is not an
// AdmissionReview gets an HTTP error; a pod the injector refuses gets an
// AdmissionReview that denies it with the reason.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "the admission webhook takes POST", http.StatusMethodNotAllowed)
		return
	}
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/json" {
		http.Error(w, fmt.Sprintf("Content-Type %q: want application/json", r.Header.Get("Content-Type")), http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewBytes+1))
	if err != nil {
		http.Error(w, "reading the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxReviewBytes {
		http.Error(w, fmt.Sprintf("the AdmissionReview is larger than %d bytes", maxReviewBytes), http.StatusRequestEntityTooLarge)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		http.Error(w, "not an AdmissionReview: "+err.Error(), http.StatusBadRequest)
		return
	}
	if review.Request == nil {
		http.Error(w, "the AdmissionReview has no request", http.StatusBadRequest)
		return
	}
	if review.APIVersion != "" && review.APIVersion != admissionv1.SchemeGroupVersion.String() {
		http.Error(w, fmt.Sprintf("AdmissionReview %s: only %s is served", review.APIVersion, admissionv1.SchemeGroupVersion), http.StatusBadRequest)
		return
	}
	nsEnabled := strings.HasSuffix(r.URL.Path, "/"+namespaceEnabledSegment)
	resp := h.review(review.Request, nsEnabled)
	resp.UID = review.Request.UID
	out, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"},
		Response: resp,
	})
	if err != nil {
		http.Error(w, "encoding the response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)
}

// review decides one request.
func (h *Handler) review(req *admissionv1.AdmissionRequest, nsEnabled bool) *admissionv1.AdmissionResponse {
	allow := &admissionv1.AdmissionResponse{Allowed: true}
	podKind := metav1.GroupVersionKind{Group: "", Version: "v1", Kind: "Pod"}
	if req.Kind != podKind || req.SubResource != "" {
		// Only pods are injected; the webhook configuration should not
		// send anything else, but refusing would block it.
		return allow
	}
	if req.Operation != admissionv1.Create {
		// A pod's containers cannot change after creation.
		return allow
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return deny(fmt.Errorf("outrigger sidecar injector: the object is not a Pod: %w", err))
	}
	ops, err := Patch(h.cfg, &pod, req.Namespace, nsEnabled)
	name := pod.Name
	if name == "" {
		name = pod.GenerateName + "*"
	}
	if err != nil {
		h.log.Info("refused pod", "namespace", req.Namespace, "pod", name, "error", err)
		return deny(fmt.Errorf("outrigger sidecar injector: %w", err))
	}
	if ops == nil {
		return allow
	}
	patch, err := json.Marshal(ops)
	if err != nil {
		return deny(fmt.Errorf("outrigger sidecar injector: encoding the patch: %w", err))
	}
	pt := admissionv1.PatchTypeJSONPatch
	allow.Patch = patch
	allow.PatchType = &pt
	h.log.Debug("injected pod", "namespace", req.Namespace, "pod", name, "native_sidecar", h.cfg.NativeSidecars)
	return allow
}

// deny refuses with err as the message the user sees.
func deny(err error) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{
		Allowed: false,
		Result: &metav1.Status{
			Status:  metav1.StatusFailure,
			Message: err.Error(),
			Reason:  metav1.StatusReasonBadRequest,
			Code:    http.StatusBadRequest,
		},
	}
}
