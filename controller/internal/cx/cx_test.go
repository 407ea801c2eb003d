package cx_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

func TestCodeAndMessage(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		code, msg string
	}{
		{"nil", nil, "", ""},
		{"domain", cx.Errorf(cx.ENOTFOUND, "no village %s", "1"), cx.ENOTFOUND, "no village 1"},
		{"wrapped", fmt.Errorf("load: %w", cx.Invalid("once_at", "is in the past")), cx.EINVALID, "once_at: is in the past"},
		{"internal details stay inside", errors.New("sql: database is locked"), cx.EINTERNAL, "internal error; the details are in the controller's log"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cx.Code(tt.err); got != tt.code {
				t.Errorf("Code = %q, want %q", got, tt.code)
			}
			if got := cx.Message(tt.err); got != tt.msg {
				t.Errorf("Message = %q, want %q", got, tt.msg)
			}
		})
	}
}
