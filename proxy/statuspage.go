package proxy

import (
	"bytes"
	"encoding/json"
	"html/template"
	"net/http"
	"time"
)

// statusRefresh is how often the status page reloads itself: often
// enough to watch a reload or a backend come back, rare enough that a
// page left open costs the gateway nothing.
const statusRefresh = 5 * time.Second

// statusPage renders a StatusView as one self-contained HTML page: no
// script, no external style sheet, font or image (the admin endpoint is
// often reached through a jump host with no Internet), laid out for a
// phone-sized screen first (tables scroll sideways inside their section
// rather than widening the page), and reloaded by the browser itself.
var statusPage = template.Must(template.New("status").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{{.Refresh}}">
<title>{{.View.Title}}{{if not .View.Ready}} (not ready){{end}}</title>
<style>
:root { color-scheme: light dark; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; }
body { font: 15px/1.4 system-ui, sans-serif; margin: 0 auto; padding: .5rem; max-width: 70rem; }
header { display: flex; flex-wrap: wrap; gap: .5rem; align-items: baseline; justify-content: space-between; }
h1 { font-size: 1.25rem; margin: .25rem 0; }
h2 { font-size: 1.05rem; margin: 1.25rem 0 .35rem; border-bottom: 1px solid #8884; }
.badge { padding: .1rem .5rem; border-radius: .75rem; color: #fff; font-weight: 600; }
.badge.ok { background: var(--ok); } .badge.bad { background: var(--bad); }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .1rem .75rem; margin: 0; }
dt { color: #888; } dd { margin: 0; overflow-wrap: anywhere; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; margin-top: .35rem; font-size: .92rem; }
th, td { text-align: left; padding: .2rem .45rem; border-bottom: 1px solid #8883; vertical-align: top; }
th { white-space: nowrap; }
td { overflow-wrap: anywhere; }
/* A phone in portrait: each row becomes a card of "column: value" lines,
   so nothing is cut off at the right edge. */
@media (max-width: 40rem) {
  table, tbody, tr, td { display: block; width: auto; }
  thead { display: none; }
  tr { border-bottom: 1px solid #8884; padding: .3rem 0; }
  td { border: 0; padding: .05rem 0; }
  td::before { content: attr(data-label) ": "; color: #888; }
}
.ok { color: var(--ok); } .warn { color: var(--warn); } .bad { color: var(--bad); font-weight: 600; }
.badge.ok, .badge.bad { color: #fff; }
ul { margin: .35rem 0; padding-left: 1.2rem; }
footer { color: #888; font-size: .8rem; margin-top: 1.5rem; }
</style>
</head>
<body>
<header>
<h1>{{.View.Title}}</h1>
{{if .View.Ready}}<span class="badge ok" id="ready">ready</span>{{else}}<span class="badge bad" id="ready">not ready</span>{{end}}
</header>
{{with .View.NotReady}}<ul id="not-ready">{{range .}}<li class="bad">{{.}}</li>{{end}}</ul>{{end}}
{{range .View.Sections}}{{$cols := .Columns}}
<section id="{{.ID}}">
<h2>{{.Title}}</h2>
{{with .Facts}}<dl>{{range .}}<dt>{{.Label}}</dt><dd{{with .Value.State}} class="{{.}}"{{end}}>{{.Value.Text}}</dd>{{end}}</dl>{{end}}
{{if .Columns}}<div class="scroll"><table>
<thead><tr>{{range .Columns}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>{{range .Rows}}<tr>{{range $i, $c := .}}<td data-label="{{index $cols $i}}"{{with $c.State}} class="{{.}}"{{end}}>{{$c.Text}}</td>{{end}}</tr>{{end}}</tbody>
</table></div>{{end}}
{{with .Notes}}<ul>{{range .}}<li{{with .State}} class="{{.}}"{{end}}>{{.Text}}</li>{{end}}</ul>{{end}}
</section>
{{end}}
<footer>{{.View.At.UTC.Format "2006-01-02 15:04:05Z"}} · refreshes every {{.Refresh}}s · the same data as <a href="status">/status</a> (JSON) · <a href="metrics">/metrics</a></footer>
</body>
</html>
`))

// serveStatusPage writes the status page for the gateway's state now.
func (g *Gateway) serveStatusPage(w http.ResponseWriter, r *http.Request) {
	var b bytes.Buffer
	err := statusPage.Execute(&b, struct {
		View    StatusView
		Refresh int
	}{View(g.Status(), time.Now()), int(statusRefresh / time.Second)})
	if err != nil {
		g.log.Error("status page", "err", err)
		http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// The page names backends and config hashes: it must not be framed
	// by another site or load anything from elsewhere.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.Write(b.Bytes())
}

// serveStatusTables writes the StatusView as JSON, for `ctftp status`.
func (g *Gateway) serveStatusTables(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(View(g.Status(), time.Now()))
}
