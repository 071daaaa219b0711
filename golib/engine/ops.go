package engine

import "context"

// operations is every operation the engine runs, by the name the JS layer
// calls it with; it is the only list. Each handler lives in the file named
// after its concept; the classes its unforeseen failures take are in
// faultClasses (faults.go). Tests (ops_test.go) check this table against the
// error catalogue, the calls in js/ and the methods of index.d.ts.
var operations = map[string]op{
	// Images
	"inspectAnImage": {run: (*Engine).inspectAnImage}, // inspect.go
	"pullAnImage":    {run: (*Engine).pullAnImage},    // images.go
	"listImages":     {run: (*Engine).listImages},     // images.go
	"removeImage":    {run: (*Engine).removeImage},    // images.go
	"copyImage":      {run: (*Engine).copyImage},      // copy.go
	"tagImage":       {run: (*Engine).tagImage},       // push.go
	"pushAnImage":    {run: (*Engine).pushAnImage},    // push.go
	"loadImage":      {run: (*Engine).loadImage},      // load.go
	"importImage":    {run: (*Engine).importImage},    // import.go
	"saveImage":      {run: (*Engine).saveImage},      // save.go

	// Containers: records and files
	"createContainer":     {run: (*Engine).createContainer},     // containers.go
	"listContainers":      {run: (*Engine).listContainers},      // containers.go
	"inspectContainer":    {run: (*Engine).inspectContainer},    // containers.go
	"removeContainer":     {run: (*Engine).removeContainer},     // containers.go
	"copyToContainer":     {run: (*Engine).copyToContainer},     // containers.go
	"removeFromContainer": {run: (*Engine).removeFromContainer}, // containers.go
	"containerChanges":    {run: (*Engine).containerChanges},    // changes.go
	"commitContainer":     {run: (*Engine).commitContainer},     // commit.go
	"exportContainer":     {run: (*Engine).exportContainer},     // export.go

	// Containers: the OCI runtime
	"startContainer":   {run: (*Engine).startContainer},   // run.go
	"stopContainer":    {run: (*Engine).stopContainer},    // run.go
	"killContainer":    {run: (*Engine).killContainer},    // run.go
	"waitContainer":    {run: (*Engine).waitContainer},    // run.go
	"restartContainer": {run: (*Engine).restartContainer}, // run.go
	"pauseContainer":   {run: (*Engine).pauseContainer},   // run.go
	"unpauseContainer": {run: (*Engine).unpauseContainer}, // run.go
	"execContainer":    {run: (*Engine).execContainer},    // exec.go
	"containerStats":   {run: (*Engine).containerStats},   // stats.go
	"containerLogs":    {run: (*Engine).containerLogs},    // logs.go

	// The store's journal
	"events": {run: (*Engine).events}, // events.go

	// Plumbing: not public methods, so not in the catalogue
	"containerLogsAck": {run: (*Engine).containerLogsAck, internal: "a log follow acknowledges what it has read (js/follow.js)"},        // logs.go
	"engineGoroutines": {run: (*Engine).engineGoroutines, internal: "the cancellation tests count the goroutines an aborted call left"}, // goroutines.go
	"ping":             {run: (*Engine).ping, internal: "the binding's tests measure the cost of a call with it"},                       // engine.go
}

// op is one entry of the table.
type op struct {
	run func(e *Engine, ctx context.Context, req *Request) (any, error)
	// internal, when set, says why the operation is not a public method:
	// it has no catalogue entry and its errors are GenericFailure.
	internal string
}
