package httpapi

import (
	"io"
	"mime/multipart"
)

type multipartW = multipart.Writer

func newMultipartW(w io.Writer) *multipartW { return multipart.NewWriter(w) }
