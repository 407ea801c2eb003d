package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/cunxiang/cunxiang/api"
	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

// maxJSONBytes bounds a JSON request body.
const maxJSONBytes = 1 << 20

// decodeJSON reads one JSON object into dst, refusing unknown fields (a
// misspelt field would otherwise be silently ignored) and naming the field
// at fault where it can.
func decodeJSON(c *gin.Context, dst any) error {
	dec := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, maxJSONBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return cx.Errorf(cx.EINVALID, "the body must hold exactly one JSON object").With(api.ReasonBodyInvalid)
	}
	return nil
}

func jsonError(err error) error {
	var (
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.Is(err, io.EOF):
		return cx.Errorf(cx.EINVALID, "the request body is empty; send a JSON object").With(api.ReasonBodyInvalid)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return cx.Errorf(cx.EINVALID, "the JSON body is cut short").With(api.ReasonBodyInvalid)
	case errors.As(err, &se):
		return cx.Errorf(cx.EINVALID, "the body is not valid JSON (error at byte %d: %s)", se.Offset, se.Error()).With(api.ReasonBodyInvalid)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return cx.Errorf(cx.EINVALID, "the body must be a JSON object, not %s", te.Value).With(api.ReasonBodyInvalid)
		}
		return cx.Invalid(field, fmt.Sprintf("must be %s, not %s", kindName(te.Type), te.Value)).With(api.ReasonFieldType, "field", field)
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name, _ := strconv.Unquote(f)
		return cx.Invalid(name, "is not a field of this request; check the spelling").With(api.ReasonFieldUnknown, "field", name)
	}
	return cx.Errorf(cx.EINVALID, "the JSON body cannot be read: %v", err).With(api.ReasonBodyInvalid)
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return t.String()
}

// list is a listing in its envelope (api.VillageList...), whose slice is
// never null.
func list[T, J, L any](c *gin.Context, envelope func([]J) L, load func(context.Context) ([]T, error), out func(T) J) (any, error) {
	xs, err := load(c.Request.Context())
	if err != nil {
		return nil, err
	}
	js := make([]J, 0, len(xs))
	for _, x := range xs {
		js = append(js, out(x))
	}
	return envelope(js), nil
}

// byID is the object named by the path parameter "id".
func byID[T, J any](c *gin.Context, load func(context.Context, int64) (T, error), out func(T) J) (any, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	x, err := load(c.Request.Context(), id)
	if err != nil {
		return nil, err
	}
	return out(x), nil
}

// idParam reads a positive integer path parameter.
func idParam(c *gin.Context, name string) (int64, error) {
	id, err := strconv.ParseInt(c.Param(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, cx.Errorf(cx.ENOTFOUND, "%q is not an id; ids are positive whole numbers", c.Param(name)).With(api.ReasonIDInvalid, "value", c.Param(name))
	}
	return id, nil
}
