package ocsp_test

import (
	"encoding/base64"
	"net/url"
)

// ocspGETPath is RFC 6960 A.1's GET form: the url-encoding of the base64 of the DER.
func ocspGETPath(der []byte) string { return url.PathEscape(base64.StdEncoding.EncodeToString(der)) }
