// Package cx holds the controller's domain error: a code that says what
// kind of failure happened and a message a village clerk can act on.
//
// Every part of the controller (store, media, CSV import) returns these, and
// only the HTTP layer maps a code to a status, as in benbjohnson/wtf's
// error.go. Internal details (SQL errors, file paths) never go into Message;
// they are wrapped and logged.
package cx

import (
	"errors"
	"fmt"

	"github.com/cunxiang/cunxiang/api"
)

// Error codes. They are also the "code" of the HTTP error body.
const (
	EINVALID      = "invalid"      // the request is wrong; Message says how
	ENOTFOUND     = "not_found"    // the thing named does not exist
	ECONFLICT     = "conflict"     // the request clashes with what is stored
	EUNAUTHORIZED = "unauthorized" // no, wrong, expired or used credentials
	EFORBIDDEN    = "forbidden"    // credentials are fine but lack the role
	ETOOLARGE     = "too_large"    // an upload is over its size limit
	EUNAVAILABLE  = "unavailable"  // a part the request needs is not installed or not running
	EINTERNAL     = "internal"     // a fault of ours; details are in the log
)

// Error is a failure with a code and a message for people. Details lists
// per-line or per-field problems when there are several (a CSV import
// reports every bad line at once).
type Error struct {
	Code    string
	Message string
	Details []api.RowError
	// Field names the offending request field, when there is one.
	Field string
	// Reason is a stable key (one of the api.Reason… constants) that the
	// console translates, with Params filled in; Message stays English
	// for API users. Every Error is made with one, by .With or in the
	// literal (TestErrorsHaveReasons of the web package reads the source).
	Reason string
	Params map[string]any
}

// With returns a copy of e with a reason key and its parameters, given as
// name, value pairs: cx.Invalid("title", "...").With(api.ReasonTitleTooLong, "max", 200).
func (e *Error) With(reason string, kv ...any) *Error {
	c := *e
	c.Reason = reason
	c.Params = Params(kv...)
	return &c
}

// Params turns name, value pairs into a parameter map; nil for none.
func Params(kv ...any) map[string]any {
	if len(kv) == 0 {
		return nil
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[fmt.Sprint(kv[i])] = kv[i+1]
	}
	return m
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an EINVALID error naming a field.
func Invalid(field, msg string) *Error {
	return &Error{Code: EINVALID, Field: field, Message: msg}
}

// ErrUnauthorized is returned for any credential that does not check out.
// It says nothing about which part was wrong.
var ErrUnauthorized = &Error{Code: EUNAUTHORIZED, Reason: api.ReasonCredentials, Message: "wrong or missing credentials"}

// Code returns the code of the first *Error in err's chain, EINTERNAL for
// any other non-nil error and "" for nil.
func Code(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// Message returns the people-readable message of err: the *Error's message,
// or a generic one for internal errors, whose text may hold details that
// must not leave the server.
func Message(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		if e.Field != "" {
			return e.Field + ": " + e.Message
		}
		return e.Message
	}
	return "internal error; the details are in the controller's log"
}

// Reason returns the reason key and parameters of the first *Error in err's
// chain, or "" and nil.
func Reason(err error) (string, map[string]any) {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason, e.Params
	}
	return "", nil
}
