package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/verdictnet/verdict/internal/inference"
)

// apiError is an OpenAI-shaped error response.
type apiError struct {
	Status  int     `json:"-"`
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
	// RetryAfter, in seconds, is sent as the Retry-After header (429s).
	RetryAfter int `json:"-"`
}

func (e *apiError) Error() string { return e.Message }

func strp(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func invalid(param, code, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Message: fmt.Sprintf(format, args...), Param: strp(param), Code: strp(code)}
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/json")
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	w.WriteHeader(e.Status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(struct {
		Error *apiError `json:"error"`
	}{e})
}

// backendError maps a worker error to an API error; param names the
// prompt field of the endpoint.
func backendError(err error, param string) *apiError {
	var ae *apiError
	var pr *prefillRefusal
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &pr):
		return &apiError{Status: http.StatusTooManyRequests, Type: "requests", Message: err.Error(), Code: strp(codeRateLimit), RetryAfter: retrySeconds(pr.retry)}
	case errors.Is(err, inference.ErrUnknownModel):
		return &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Message: err.Error(), Param: strp("model"), Code: strp("model_not_found")}
	case errors.Is(err, inference.ErrContextLength):
		return invalid(param, "context_length_exceeded", "%v", err)
	case errors.Is(err, inference.ErrInvalid):
		return invalid("", "", "%v", err)
	case errors.Is(err, ErrInsufficientQuota):
		return quotaError(err)
	case errors.Is(err, ErrNoWorker):
		return &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Message: err.Error(), Code: strp("no_worker_available")}
	case errors.Is(err, ErrBacklog):
		return &apiError{Status: http.StatusTooManyRequests, Type: "requests", Message: err.Error() + "; retry later", Code: strp(codeRateLimit), RetryAfter: RetryAfterBacklog}
	case errors.Is(err, inference.ErrBusy):
		return &apiError{Status: http.StatusTooManyRequests, Type: "requests", Message: err.Error() + "; retry later", Code: strp(codeRateLimit), RetryAfter: RetryAfterBusy}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &apiError{Status: 499, Type: "server_error", Message: "request cancelled: " + err.Error()}
	}
	return &apiError{Status: http.StatusInternalServerError, Type: "server_error", Message: "internal error: " + err.Error()}
}

// Retry-After values (seconds): a saturated worker frees a slot within
// about a generation; an account that cannot pay may once its running
// requests finish and release what they hold, or once it is funded.
// A publishing backlog drains at a few hundred receipts a second.
const (
	RetryAfterBusy    = 1
	RetryAfterQuota   = 10
	RetryAfterBacklog = 2
)

// codeRateLimit is the error code of a 429 that a retry later may pass:
// a busy worker, a publishing backlog, a caller over its abandoned-prefill
// budget.
const codeRateLimit = "rate_limit_exceeded"

func quotaError(err error) *apiError {
	return &apiError{Status: http.StatusTooManyRequests, Type: "insufficient_quota", Message: err.Error(), Code: strp("insufficient_quota"), RetryAfter: RetryAfterQuota}
}

func isCancel(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
