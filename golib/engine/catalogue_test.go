package engine

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/k3-core/k3-core/golib/errcat"
)

// errcat.New panics on a class its operation's catalogue does not list,
// and engine.Call turns that panic into a GenericFailure 'internal error':
// a user would meet the bug, not a test. These tests find every class an
// operation can return and check it against catalogue.json.

// TestClassTablesAreCatalogued walks the fault-to-class table of every
// operation.
func TestClassTablesAreCatalogued(t *testing.T) {
	for op, classes := range faultClasses {
		for fault, class := range classes {
			if _, ok := errcat.Lookup(op, class); !ok {
				t.Errorf("faultClasses[%s][fault %d] = %q, which is not in the catalogue of %s", op, fault, class, op)
			}
		}
	}
}

// TestEveryErrcatNewIsCatalogued reads the engine's sources and follows
// every errcat.New call back to the operation and class it is given: a
// literal or constant, a parameter of a helper (resolved at each of its
// callers), a closure's parameter (at each call of the closure, also where
// it is handed to a helper such as outputFailure), a local variable (every
// value assigned to it), or a field or entry of a package table.
func TestEveryErrcatNewIsCatalogued(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	var sources []string
	for _, f := range files {
		if !strings.HasSuffix(f, "_test.go") {
			sources = append(sources, f)
		}
	}
	findings, calls := checkErrcatCalls(t, sources, nil)
	for _, f := range findings {
		t.Error(f)
	}
	if calls < 50 {
		t.Fatalf("only %d errcat.New calls found: are the sources read?", calls)
	}
}

// TestTheErrcatCheckFindsBadClasses runs the check on code with classes
// the catalogue does not have, in each form it follows.
func TestTheErrcatCheckFindsBadClasses(t *testing.T) {
	const src = `package engine

const opHere = "loadImage"

var badOutput = outputClasses{noSpace: "InsufficientDiskSpaceForSave", other: "StoreFailure"}

func direct() { errcat.New(opHere, "RegistryConnectionFailure", "", nil) }

func helper(op, class string) { errcat.New(op, class, "", nil) }

func viaHelper() {
	const op = "loadImage"
	helper(op, "InvalidArchive")
	helper(op, "PushImageFailure")
}

func viaClosure() {
	const op = "pullAnImage"
	fail := func(class string) { errcat.New(op, class, "", nil) }
	fail("StoreFailure")
	fail("InvalidArchive")
	useNewErr(fail, badOutput)
}

func useNewErr(newErr func(string), classes outputClasses) {
	newErr(classes.noSpace)
	newErr(classes.other)
}

func viaVariable(op string) {
	class := "StoreFailure"
	if op == "" {
		class = "NoSuchClass"
	}
	errcat.New("listImages", class, "", nil)
}

func unknowable(class string) { errcat.New("listImages", class, "", nil) }
`
	findings, _ := checkErrcatCalls(t, nil, map[string]string{"bad.go": src})
	want := []string{
		`"loadImage" has no class "RegistryConnectionFailure"`,
		`"loadImage" has no class "PushImageFailure"`,
		`"pullAnImage" has no class "InvalidArchive"`,
		`"pullAnImage" has no class "InsufficientDiskSpaceForSave"`,
		`"listImages" has no class "NoSuchClass"`,
		`cannot tell the class`,
	}
	joined := strings.Join(findings, "\n")
	for _, w := range want {
		if !strings.Contains(joined, w) {
			t.Errorf("the check missed %s; it found:\n%s", w, joined)
		}
	}
	if len(findings) != len(want) {
		t.Errorf("%d findings, want %d:\n%s", len(findings), len(want), joined)
	}
}

// checkErrcatCalls parses the files (paths, or names to sources) and
// returns what is wrong with their errcat.New calls, and how many there are.
func checkErrcatCalls(t *testing.T, paths []string, sources map[string]string) ([]string, int) {
	t.Helper()
	a := &callAnalysis{fset: token.NewFileSet(), consts: map[string]string{}, vars: map[string]ast.Expr{},
		funcs: map[string]*ast.FuncDecl{}, parent: map[ast.Node]ast.Node{}}
	var files []*ast.File
	for _, p := range paths {
		f, err := parser.ParseFile(a.fset, p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	for name, src := range sources {
		f, err := parser.ParseFile(a.fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	for _, f := range files {
		a.index(f)
	}
	a.files = files
	seen := map[string]bool{}
	var findings []string
	calls := 0
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || !isSelector(call.Fun, "errcat", "New") || len(call.Args) < 2 {
				return true
			}
			calls++
			for _, finding := range a.check(call) {
				if !seen[finding] {
					seen[finding] = true
					findings = append(findings, finding)
				}
			}
			return true
		})
	}
	sort.Strings(findings)
	return findings, calls
}

// classTables are the package's tables of classes by operation and fault,
// which TestClassTablesAreCatalogued checks row by row.
var classTables = map[string]func(op string) []string{
	"faultClasses": func(op string) []string { return tableRow(faultClasses[op]) },
}

func tableRow[F comparable](row map[F]string) []string {
	var out []string
	for _, class := range row {
		out = append(out, class)
	}
	return out
}

type callAnalysis struct {
	fset   *token.FileSet
	files  []*ast.File
	consts map[string]string   // package-level string constants
	vars   map[string]ast.Expr // package-level variables' values
	funcs  map[string]*ast.FuncDecl
	parent map[ast.Node]ast.Node
}

// frame is one way a function's body is reached: the call that entered it
// and the frame its arguments are read in; a closure also has the frame
// of the function around it, for the variables it shares.
type frame struct {
	fn     ast.Node // *ast.FuncDecl or *ast.FuncLit
	call   *ast.CallExpr
	caller *frame
	outer  *frame
}

func (a *callAnalysis) index(f *ast.File) {
	var stack []ast.Node
	ast.Inspect(f, func(n ast.Node) bool {
		if n == nil {
			stack = stack[:len(stack)-1]
			return true
		}
		if len(stack) > 0 {
			a.parent[n] = stack[len(stack)-1]
		}
		stack = append(stack, n)
		return true
	})
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			a.funcs[d.Name.Name] = d
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				vs, ok := spec.(*ast.ValueSpec)
				if !ok {
					continue
				}
				for i, name := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					if d.Tok == token.CONST {
						if s, ok := stringLit(vs.Values[i]); ok {
							a.consts[name.Name] = s
						}
					} else {
						a.vars[name.Name] = vs.Values[i]
					}
				}
			}
		}
	}
}

// check returns the findings of one errcat.New call, in every frame it runs in.
func (a *callAnalysis) check(call *ast.CallExpr) []string {
	var out []string
	where := a.fset.Position(call.Pos())
	for _, f := range a.frames(a.enclosingFunc(call), 0) {
		classes, ok := a.strings(call.Args[1], f, 0)
		if !ok {
			out = append(out, fmt.Sprintf("%s: cannot tell the class of this errcat.New%s; pass a literal, a constant, or a table entry", where, a.via(f)))
			continue
		}
		if len(classes) == 1 && classes[0] == errcat.Generic {
			continue // every operation has it
		}
		ops, ok := a.strings(call.Args[0], f, 0)
		if !ok {
			out = append(out, fmt.Sprintf("%s: cannot tell the operation of this errcat.New%s", where, a.via(f)))
			continue
		}
		for _, op := range ops {
			for _, class := range classes {
				if _, ok := errcat.Lookup(op, class); !ok {
					out = append(out, fmt.Sprintf("%s: the catalogue of %q has no class %q%s", where, op, class, a.via(f)))
				}
			}
		}
	}
	return out
}

// via names the calls a frame was reached through.
func (a *callAnalysis) via(f *frame) string {
	var steps []string
	for ; f != nil; f = f.caller {
		if f.call != nil {
			steps = append(steps, a.fset.Position(f.call.Pos()).String())
		}
	}
	if len(steps) == 0 {
		return ""
	}
	return " (called at " + strings.Join(steps, " <- ") + ")"
}

func (a *callAnalysis) enclosingFunc(n ast.Node) ast.Node {
	for p := a.parent[n]; p != nil; p = a.parent[p] {
		switch p.(type) {
		case *ast.FuncDecl, *ast.FuncLit:
			return p
		}
	}
	return nil
}

// maxDepth bounds how far calls are followed back (recursion ends there).
const maxDepth = 8

// frames lists the ways fn is reached.
func (a *callAnalysis) frames(fn ast.Node, depth int) []*frame {
	if fn == nil || depth > maxDepth {
		return []*frame{{fn: fn}}
	}
	var out []*frame
	switch fn := fn.(type) {
	case *ast.FuncDecl:
		for _, file := range a.files {
			ast.Inspect(file, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if ok && calls(call, fn) {
					for _, caller := range a.frames(a.enclosingFunc(call), depth+1) {
						out = append(out, &frame{fn: fn, call: call, caller: caller})
					}
				}
				return true
			})
		}
	case *ast.FuncLit:
		for _, outer := range a.frames(a.enclosingFunc(fn), depth+1) {
			out = append(out, a.closureFrames(fn, outer, depth)...)
		}
	}
	if len(out) == 0 {
		out = append(out, &frame{fn: fn})
	}
	return out
}

// calls is true of a call of fn: by name, or for a method by selector.
func calls(call *ast.CallExpr, fn *ast.FuncDecl) bool {
	switch callee := call.Fun.(type) {
	case *ast.Ident:
		return fn.Recv == nil && callee.Name == fn.Name.Name
	case *ast.SelectorExpr:
		return fn.Recv != nil && callee.Sel.Name == fn.Name.Name
	}
	return false
}

// closureFrames lists the calls of a closure bound to a local name in the
// function around it: direct calls, and calls inside a helper it is passed to.
func (a *callAnalysis) closureFrames(lit *ast.FuncLit, outer *frame, depth int) []*frame {
	name := boundName(a.parent[lit], lit)
	if name == "" {
		return []*frame{{fn: lit, outer: outer}}
	}
	var out []*frame
	ast.Inspect(outer.fn, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		if id, ok := call.Fun.(*ast.Ident); ok && id.Name == name {
			out = append(out, &frame{fn: lit, call: call, caller: outer, outer: outer})
			return true
		}
		// Handed to a helper: its calls of that parameter call the closure.
		helperName, ok := call.Fun.(*ast.Ident)
		if !ok || a.funcs[helperName.Name] == nil {
			return true
		}
		helper := a.funcs[helperName.Name]
		for i, arg := range call.Args {
			if id, ok := arg.(*ast.Ident); ok && id.Name == name {
				param := paramName(helper.Type, i)
				helperFrame := &frame{fn: helper, call: call, caller: outer}
				ast.Inspect(helper.Body, func(n ast.Node) bool {
					if inner, ok := n.(*ast.CallExpr); ok {
						if id, ok := inner.Fun.(*ast.Ident); ok && id.Name == param {
							out = append(out, &frame{fn: lit, call: inner, caller: helperFrame, outer: outer})
						}
					}
					return true
				})
			}
		}
		return true
	})
	if len(out) == 0 {
		out = append(out, &frame{fn: lit, outer: outer})
	}
	return out
}

// boundName is the local name a closure is assigned to, or "".
func boundName(parent ast.Node, lit *ast.FuncLit) string {
	assign, ok := parent.(*ast.AssignStmt)
	if !ok {
		return ""
	}
	for i, rhs := range assign.Rhs {
		if rhs == lit && i < len(assign.Lhs) {
			if id, ok := assign.Lhs[i].(*ast.Ident); ok {
				return id.Name
			}
		}
	}
	return ""
}

// strings lists the string values expr can have in frame f; false when
// it cannot tell.
func (a *callAnalysis) strings(expr ast.Expr, f *frame, depth int) ([]string, bool) {
	if depth > 4*maxDepth {
		return nil, false
	}
	if s, ok := stringLit(expr); ok {
		return []string{s}, true
	}
	switch e := expr.(type) {
	case *ast.ParenExpr:
		return a.strings(e.X, f, depth+1)
	case *ast.SelectorExpr:
		if isSelector(e, "errcat", "Generic") {
			return []string{errcat.Generic}, true
		}
		// A field of a table of classes (outputClasses{noSpace: ...}).
		var out []string
		lits, ok := a.composites(e.X, f, depth+1)
		for _, lit := range lits {
			for _, elt := range lit.Elts {
				if kv, isKV := elt.(*ast.KeyValueExpr); isKV {
					if key, isIdent := kv.Key.(*ast.Ident); isIdent && key.Name == e.Sel.Name {
						values, valuesOK := a.strings(kv.Value, nil, depth+1)
						out, ok = append(out, values...), ok && valuesOK
					}
				}
			}
		}
		return out, ok && len(out) > 0
	case *ast.IndexExpr:
		// table[op][fault]: the classes of op's row, read from the table itself.
		if row, isIndex := e.X.(*ast.IndexExpr); isIndex {
			if table, isIdent := row.X.(*ast.Ident); isIdent && classTables[table.Name] != nil {
				ops, ok := a.strings(row.Index, f, depth+1)
				var out []string
				for _, op := range ops {
					out = append(out, classTables[table.Name](op)...)
				}
				return out, ok && len(out) > 0
			}
		}
	case *ast.CallExpr:
		// classOf(op, fault): a class of op's row, or GenericFailure.
		if fn, isIdent := e.Fun.(*ast.Ident); isIdent && fn.Name == "classOf" && len(e.Args) == 2 {
			ops, ok := a.strings(e.Args[0], f, depth+1)
			out := []string{errcat.Generic}
			for _, op := range ops {
				out = append(out, classTables["faultClasses"](op)...)
			}
			return out, ok && len(ops) > 0
		}
	case *ast.Ident:
		return a.identStrings(e, f, depth)
	}
	return nil, false
}

func (a *callAnalysis) identStrings(id *ast.Ident, f *frame, depth int) ([]string, bool) {
	for ; f != nil; f = f.outer {
		if i := paramIndex(funcType(f.fn), id.Name); i >= 0 {
			if f.call == nil || i >= len(f.call.Args) {
				return nil, false
			}
			return a.strings(f.call.Args[i], f.caller, depth+1)
		}
		if values, found := a.localValues(f.fn, id.Name); found {
			var out []string
			for _, v := range values {
				s, ok := a.strings(v, f, depth+1)
				if !ok {
					return nil, false
				}
				out = append(out, s...)
			}
			return out, true
		}
	}
	if s, ok := a.consts[id.Name]; ok {
		return []string{s}, true
	}
	return nil, false
}

// localValues lists every value the function assigns to a local name.
func (a *callAnalysis) localValues(fn ast.Node, name string) ([]ast.Expr, bool) {
	_, body := funcParts(fn)
	if body == nil {
		return nil, false
	}
	var values []ast.Expr
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		switch s := n.(type) {
		case *ast.FuncLit:
			return false // its own locals
		case *ast.AssignStmt:
			for i, lhs := range s.Lhs {
				if id, ok := lhs.(*ast.Ident); ok && id.Name == name {
					found = true
					if len(s.Rhs) == len(s.Lhs) {
						values = append(values, s.Rhs[i])
					} else if i == 0 && len(s.Rhs) == 1 {
						values = append(values, s.Rhs[0]) // v, ok := m[k]
					}
				}
			}
		case *ast.ValueSpec:
			for i, n := range s.Names {
				if n.Name == name {
					found = true
					if i < len(s.Values) {
						values = append(values, s.Values[i])
					}
				}
			}
		}
		return true
	})
	return values, found
}

// composites lists the composite literals expr can be: a package table,
// or a parameter given one.
func (a *callAnalysis) composites(expr ast.Expr, f *frame, depth int) ([]*ast.CompositeLit, bool) {
	switch e := expr.(type) {
	case *ast.CompositeLit:
		return []*ast.CompositeLit{e}, true
	case *ast.Ident:
		for ; f != nil; f = f.outer {
			if i := paramIndex(funcType(f.fn), e.Name); i >= 0 {
				if f.call == nil || i >= len(f.call.Args) {
					return nil, false
				}
				return a.composites(f.call.Args[i], f.caller, depth+1)
			}
		}
		if v, ok := a.vars[e.Name]; ok {
			return a.composites(v, nil, depth+1)
		}
	}
	return nil, false
}

// funcParts is a function's signature and body, whether declared or literal.
func funcParts(fn ast.Node) (*ast.FuncType, *ast.BlockStmt) {
	switch fn := fn.(type) {
	case *ast.FuncDecl:
		return fn.Type, fn.Body
	case *ast.FuncLit:
		return fn.Type, fn.Body
	}
	return nil, nil
}

func funcType(fn ast.Node) *ast.FuncType {
	ft, _ := funcParts(fn)
	return ft
}

// paramIndex is the position of the parameter named name, or -1.
func paramIndex(ft *ast.FuncType, name string) int {
	if ft == nil || ft.Params == nil {
		return -1
	}
	i := 0
	for _, field := range ft.Params.List {
		if len(field.Names) == 0 {
			i++
			continue
		}
		for _, n := range field.Names {
			if n.Name == name {
				return i
			}
			i++
		}
	}
	return -1
}

// paramName is the name of the parameter at position i, or "".
func paramName(ft *ast.FuncType, i int) string {
	for _, field := range ft.Params.List {
		for _, n := range field.Names {
			if i == 0 {
				return n.Name
			}
			i--
		}
		if len(field.Names) == 0 {
			i--
		}
	}
	return ""
}

func stringLit(expr ast.Expr) (string, bool) {
	lit, ok := expr.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

func isSelector(expr ast.Expr, pkg, name string) bool {
	sel, ok := expr.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg && sel.Sel.Name == name
}
