package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// AssetPrefix is the path under which the page's stylesheet and script are served.
const AssetPrefix = "/dashboard/"

// securityHeaders keep the page to its own origin: no inline or foreign script, no framing.
// Images are blob: URLs made from authenticated fetches.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; " +
		"connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy":        "no-referrer",
	"Cache-Control":          "no-cache",
}

// Register serves the page at "/" and its assets under AssetPrefix on mux. Neither needs a
// token: the page holds no data, it asks the API for everything with the caller's token.
func Register(mux *http.ServeMux) {
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded folder is part of the binary
	}
	assets := http.StripPrefix(AssetPrefix, http.FileServerFS(files))
	mux.Handle("GET "+AssetPrefix, withHeaders(assets))
	mux.Handle("GET /{$}", withHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, files, "index.html")
	})))
}

func withHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range securityHeaders {
			w.Header().Set(k, v)
		}
		h.ServeHTTP(w, r)
	})
}
