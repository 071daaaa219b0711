package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/k3-core/k3-core/golib/bundle"
	"github.com/k3-core/k3-core/golib/errcat"
	"github.com/k3-core/k3-core/golib/lifecycle"
	"github.com/k3-core/k3-core/golib/store"
	"github.com/k3-core/k3-core/golib/treeops"
)

var (
	// Letters, digits, '-' and '_'; '.' only inside (a name).
	containerRefPattern  = regexp.MustCompile(`^[A-Za-z0-9_-]([A-Za-z0-9_.-]{0,253}[A-Za-z0-9_-])?$`)
	containerNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$`)
	containerStates      = []string{"created", "running", "paused", "exited"}
)

// ContainerSummary is one container as listContainers and inspectContainer
// show it.
type ContainerSummary struct {
	ID          string            `json:"Id"`
	Name        string            `json:"Name"`
	Image       string            `json:"Image"`
	ImageID     string            `json:"ImageID"`
	ImageDigest string            `json:"ImageDigest"`
	State       string            `json:"State"`
	Created     string            `json:"Created"`
	Command     []string          `json:"Command"`
	Labels      map[string]string `json:"Labels"`
	ExitCode    int               `json:"ExitCode"`
	StartedAt   string            `json:"StartedAt"`
	FinishedAt  string            `json:"FinishedAt"`
	Pid         int               `json:"Pid"`
}

func (e *Engine) summary(st *store.Store, c store.Container) ContainerSummary {
	var opts bundle.Options
	_ = json.Unmarshal([]byte(c.Config), &opts)
	s := ContainerSummary{ID: c.ID, Name: c.Name, Image: c.ImageRef, ImageID: c.ImageID, State: c.State, Created: c.Created,
		Labels: opts.Labels, Command: []string{}, ExitCode: c.Run.ExitCode, StartedAt: c.Run.StartedAt,
		FinishedAt: c.Run.FinishedAt, Pid: c.Run.Pid}
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	if img, err := st.FindImage(c.ImageID); err == nil {
		s.ImageDigest = img.ManifestDigest
	}
	if spec, err := bundle.ReadSpec(st.BundleDir(c.ID)); err == nil && spec.Process != nil {
		s.Command = spec.Process.Args
	}
	return s
}

// partialNameOps take a part of a container's name as well, as SPEC §3
// documents for exportContainer; inspectContainer reads alike. Every other
// operation, and every one that changes a container, takes what docker
// takes: the full ID, the exact name or a unique ID prefix.
var partialNameOps = map[string]bool{opExport: true, "inspectContainer": true}

// resolveContainer finds the one container idOrName names, or the error
// op documents for each way that fails.
func (e *Engine) resolveContainer(op, invalidClass string, st *store.Store, idOrName string, details map[string]any) (store.Container, *errcat.Error) {
	with := func(err *errcat.Error) *errcat.Error {
		for k, v := range details {
			err.With(k, v)
		}
		return err
	}
	found, err := st.FindContainers(idOrName, partialNameOps[op])
	if err != nil {
		return store.Container{}, with(errcat.New(op, "ResolveContainerName", err.Error(), err))
	}
	switch len(found) {
	case 0:
		return store.Container{}, with(errcat.New(op, "ContainerNotFound", "Container not found", nil))
	case 1:
		c, err := lifecycle.Reconcile(st, found[0])
		if err != nil {
			return store.Container{}, with(errcat.New(op, "ResolveContainerName", err.Error(), err))
		}
		return c, nil
	}
	var names []string
	for _, c := range found {
		names = append(names, fmt.Sprintf("%s (%s)", c.Name, c.ID[:12]))
	}
	return store.Container{}, with(errcat.New(op, invalidClass,
		fmt.Sprintf("Container ID %q matches %d containers: %s", idOrName, len(found), strings.Join(names, ", ")), nil))
}

// containerRef validates the first argument of a container operation.
func containerRef(raw json.RawMessage) (string, string) {
	id, present, err := stringParam(raw, "containerId")
	switch {
	case err != nil:
		return "", err.Error()
	case !present || id == "":
		return "", "Container ID is required"
	case !containerRefPattern.MatchString(id):
		return id, "Container ID contains invalid characters"
	}
	return id, ""
}

// createContainer(image, {name, cmd, entrypoint, env, workingDir, user, labels, hostname,
// network, mounts, capAdd, capDrop, privileged, securityOpt})
func (e *Engine) createContainer(ctx context.Context, call *Request) (any, error) {
	const op = "createContainer"
	list, err := positional(call.Args, 2)
	if err != nil {
		return nil, errcat.New(op, "InvalidCreateContainerParameters", err.Error(), nil)
	}
	imageRef, err := requiredString(list[0], "image")
	invalid := func(reason string) error {
		return errcat.New(op, "InvalidCreateContainerParameters", reason, nil).With("image", imageRef)
	}
	if err != nil {
		return nil, invalid(err.Error())
	}
	if reason := checkStoreRef(imageRef); reason != "" {
		return nil, invalid(reason)
	}
	opts, reason := parseCreateOptions(list[1])
	if reason != "" {
		return nil, invalid(reason)
	}
	fail := func(class string, err error) error {
		return errcat.New(op, class, err.Error(), err).With("image", imageRef).With("name", opts.Name)
	}
	st, hold, err := e.heldStore(call.Root)
	if err != nil {
		return nil, fail("StoreFailure", err)
	}
	defer hold.Release()
	img, err := st.FindImage(imageCandidates(imageRef)...)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fail("ImageNotFoundLocally", fmt.Errorf("no image %s in the local store", imageRef))
	}
	if err != nil {
		return nil, fail("StoreFailure", err)
	}
	config, err := lifecycle.ImageConfig(st, img)
	if err != nil {
		return nil, fail("CreateContainerFailure", err)
	}
	named := opts.Name != ""
	var record store.Container
	for attempt := 1; ; attempt++ {
		if !named {
			opts.Name = randomName()
		}
		var id string
		if id, err = randomID(); err != nil {
			return nil, fail("CreateContainerFailure", err)
		}
		optsJSON, _ := json.Marshal(opts)
		record = store.Container{ID: id, Name: opts.Name, ImageID: img.ID, ImageRef: imageRef, State: "created",
			Created: time.Now().UTC().Format(time.RFC3339Nano), Config: string(optsJSON)}
		err = e.lifecycle(st, call).Create(ctx, record, config, opts)
		// A name made up here that another container has is made up again.
		if named || !errors.Is(err, store.ErrNameInUse) || attempt == 5 {
			break
		}
	}
	switch {
	case errors.Is(err, store.ErrNameInUse):
		return nil, fail("ContainerNameInUse", fmt.Errorf("the name %q is already used by a container", opts.Name))
	case errors.Is(err, store.ErrNotFound): // another process removed the image meanwhile
		return nil, fail("ImageNotFoundLocally", fmt.Errorf("no image %s in the local store: %w", imageRef, err))
	case errors.Is(err, store.ErrDatabase):
		return nil, fail("StoreFailure", err)
	case errors.Is(err, context.Canceled):
		return nil, fail("AbortError", err)
	case err != nil:
		return nil, fail("CreateContainerFailure", err)
	}
	return e.summary(st, record), nil
}

func parseCreateOptions(raw json.RawMessage) (bundle.Options, string) {
	var opts bundle.Options
	if isNull(raw) {
		return opts, ""
	}
	p, err := objectParam(raw, "options")
	if err != nil {
		return opts, err.Error()
	}
	var present bool
	for _, f := range []struct {
		key string
		dst *string
	}{{"name", &opts.Name}, {"workingDir", &opts.WorkingDir}, {"user", &opts.User}, {"hostname", &opts.Hostname}} {
		if *f.dst, _, err = p.str(f.key); err != nil {
			return opts, err.Error()
		}
	}
	if opts.Name != "" && !containerNamePattern.MatchString(opts.Name) {
		return opts, "Container name contains invalid characters"
	}
	for _, f := range []struct {
		key string
		dst *[]string
	}{{"cmd", &opts.Cmd}, {"entrypoint", &opts.Entrypoint}, {"env", &opts.Env},
		{"capAdd", &opts.CapAdd}, {"capDrop", &opts.CapDrop}, {"securityOpt", &opts.SecurityOpt}} {
		if isNull(p.raw[f.key]) {
			continue
		}
		if err := json.Unmarshal(p.raw[f.key], f.dst); err != nil {
			return opts, fmt.Sprintf("options.%s must be an array of strings", f.key)
		}
	}
	for _, kv := range opts.Env {
		if k, _, _ := strings.Cut(kv, "="); k == "" {
			return opts, fmt.Sprintf("options.env entry %q has no variable name", kv)
		}
	}
	if present = !isNull(p.raw["labels"]); present {
		if err := json.Unmarshal(p.raw["labels"], &opts.Labels); err != nil {
			return opts, "options.labels must be an object of strings"
		}
	}
	if opts.Network, _, err = p.str("network"); err != nil {
		return opts, err.Error()
	}
	if opts.Network != "" && opts.Network != "none" && opts.Network != "host" {
		return opts, "options.network must be 'none' or 'host'"
	}
	if !isNull(p.raw["mounts"]) {
		if err := json.Unmarshal(p.raw["mounts"], &opts.Mounts); err != nil {
			return opts, "options.mounts must be an array of {source, destination, readOnly}"
		}
		for i, m := range opts.Mounts {
			if !filepath.IsAbs(m.Source) || !filepath.IsAbs(m.Destination) {
				return opts, "options.mounts: source and destination must be absolute paths"
			}
			if _, err := os.Stat(m.Source); err != nil {
				return opts, fmt.Sprintf("options.mounts: %s does not exist", m.Source)
			}
			// The runtime resolves the destination inside the container's
			// root; a ".." is refused rather than guessed at, and the clean
			// form is kept so that commit knows the mount point.
			if slices.Contains(strings.Split(m.Destination, "/"), "..") {
				return opts, fmt.Sprintf("options.mounts: destination %s must not contain ..", m.Destination)
			}
			if opts.Mounts[i].Destination = path.Clean(m.Destination); opts.Mounts[i].Destination == "/" {
				return opts, "options.mounts: destination / would hide the container's whole root"
			}
		}
	}
	if opts.Privileged, err = p.boolean("privileged", false); err != nil {
		return opts, err.Error()
	}
	if err := bundle.CheckIsolation(opts); err != nil {
		return opts, "options." + err.Error()
	}
	return opts, ""
}

func randomID() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

var (
	nameAdjectives = []string{"brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "merry", "nimble", "proud", "quiet", "rapid", "steady", "tender", "upbeat", "vivid", "witty", "zealous"}
	nameNouns      = []string{"albatross", "badger", "crane", "dolphin", "eagle", "falcon", "gazelle", "heron", "ibis", "jaguar", "kestrel", "lynx", "marten", "newt", "otter", "puffin", "quail", "raven", "stork", "tapir"}
)

// randomName makes a docker-style name; the number keeps collisions rare.
func randomName() string {
	pick := func(list []string) string {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(list))))
		return list[n.Int64()]
	}
	n, _ := rand.Int(rand.Reader, big.NewInt(10000))
	return fmt.Sprintf("%s_%s_%d", pick(nameAdjectives), pick(nameNouns), n.Int64())
}

// listContainers({state, name, image})
func (e *Engine) listContainers(ctx context.Context, call *Request) (any, error) {
	const op = "listContainers"
	list, err := positional(call.Args, 1)
	if err != nil {
		return nil, errcat.New(op, "InvalidListContainersParameters", err.Error(), nil)
	}
	var state, nameFilter, imageFilter string
	if !isNull(list[0]) {
		p, err := objectParam(list[0], "filters")
		if err == nil {
			state, _, err = p.str("state")
		}
		if err == nil {
			nameFilter, _, err = p.str("name")
		}
		if err == nil {
			imageFilter, _, err = p.str("image")
		}
		if err == nil && state != "" && !contains(containerStates, state) {
			err = fmt.Errorf("filters.state must be one of %s", strings.Join(containerStates, ", "))
		}
		if err != nil {
			return nil, errcat.New(op, "InvalidListContainersParameters", err.Error(), nil)
		}
	}
	st, err := e.store(call.Root)
	if err != nil {
		return nil, errcat.New(op, "StoreFailure", err.Error(), err)
	}
	all, err := st.Containers()
	if err != nil {
		return nil, errcat.New(op, "StoreFailure", err.Error(), err)
	}
	out := []ContainerSummary{}
	for _, c := range all {
		if c, err = lifecycle.Reconcile(st, c); err != nil {
			return nil, errcat.New(op, "StoreFailure", err.Error(), err)
		}
		if (state != "" && c.State != state) || (nameFilter != "" && !strings.Contains(c.Name, nameFilter)) ||
			(imageFilter != "" && c.ImageRef != imageFilter && c.ImageID != imageFilter) {
			continue
		}
		out = append(out, e.summary(st, c))
	}
	return out, nil
}

// ContainerDetails is inspectContainer's answer.
type ContainerDetails struct {
	ContainerSummary
	Config    bundle.Options `json:"Config"`
	BundleDir string         `json:"BundleDir"`
	Layers    []string       `json:"Layers"`
}

// containerCall is the common start of an operation on one container.
func (e *Engine) containerCall(op, invalidClass string, call *Request, n int) ([]json.RawMessage, *store.Store, store.Container, error) {
	list, err := positional(call.Args, n)
	if err != nil {
		return nil, nil, store.Container{}, errcat.New(op, invalidClass, err.Error(), nil)
	}
	id, reason := containerRef(list[0])
	if reason != "" {
		return nil, nil, store.Container{}, errcat.New(op, invalidClass, reason, nil).With("containerId", id)
	}
	st, err := e.store(call.Root)
	if err != nil {
		return nil, nil, store.Container{}, errcat.New(op, "ResolveContainerName", err.Error(), err).With("containerId", id)
	}
	c, cerr := e.resolveContainer(op, invalidClass, st, id, map[string]any{"containerId": id})
	if cerr != nil {
		return nil, nil, store.Container{}, cerr
	}
	return list, st, c, nil
}

func (e *Engine) inspectContainer(ctx context.Context, call *Request) (any, error) {
	const op = "inspectContainer"
	_, st, c, err := e.containerCall(op, "InvalidInspectContainerParameters", call, 1)
	if err != nil {
		return nil, err
	}
	details := ContainerDetails{ContainerSummary: e.summary(st, c), BundleDir: st.BundleDir(c.ID), Layers: []string{}}
	if err := json.Unmarshal([]byte(c.Config), &details.Config); err != nil {
		return nil, errcat.New(op, "FetchContainerInfoFailure", "container record is corrupt: "+err.Error(), err).With("containerId", c.ID)
	}
	img, err := st.FindImage(c.ImageID)
	if err != nil {
		return nil, errcat.New(op, "FetchContainerInfoFailure", "container image record: "+err.Error(), err).With("containerId", c.ID)
	}
	for _, l := range img.Layers {
		details.Layers = append(details.Layers, l.DiffID)
	}
	return details, nil
}

func (e *Engine) removeContainer(ctx context.Context, call *Request) (any, error) {
	const op = "removeContainer"
	list, st, c, err := e.containerCall(op, "InvalidRemoveContainerParameters", call, 2)
	if err != nil {
		return nil, err
	}
	force := false
	if !isNull(list[1]) {
		opts, err := objectParam(list[1], "options")
		if err == nil {
			force, err = opts.boolean("force", false)
		}
		if err != nil {
			return nil, errcat.New(op, "InvalidRemoveContainerParameters", err.Error(), nil).With("containerId", c.ID)
		}
	}
	if _, err := e.lifecycle(st, call).Remove(ctx, c.ID, force); err != nil {
		return nil, runtimeFailure(op, c, err)
	}
	return map[string]any{"Id": c.ID, "Name": c.Name, "Removed": true}, nil
}

func (e *Engine) copyToContainer(ctx context.Context, call *Request) (any, error) {
	const op = "copyToContainer"
	list, st, c, err := e.containerCall(op, "InvalidCopyParameters", call, 3)
	if err != nil {
		return nil, err
	}
	src, _, err1 := stringParam(list[1], "srcPath")
	dest, _, err2 := stringParam(list[2], "destPath")
	if err := errors.Join(err1, err2); err != nil || src == "" || dest == "" {
		reason := "srcPath and destPath are required"
		if err != nil {
			reason = err.Error()
		}
		return nil, errcat.New(op, "InvalidCopyParameters", reason, nil).With("containerId", c.ID)
	}
	fail := func(class string, err error) *errcat.Error {
		return errcat.New(op, class, err.Error(), err).With("containerId", c.ID).With("srcPath", src).With("destPath", dest)
	}
	var written string
	err = e.changeFiles(ctx, st, call, c.ID, func(root treeops.Root) (err error) {
		written, err = treeops.CopyIn(ctx, root, src, dest)
		return err
	})
	switch {
	case errors.Is(err, context.Canceled):
		return nil, fail("AbortError", err)
	case errors.Is(err, bundle.ErrSourceNotFound):
		return nil, fail("CopySourceNotFound", err)
	case errors.Is(err, bundle.ErrDestinationNotFound):
		return nil, fail("CopyDestinationNotFound", err)
	case err != nil:
		return nil, changeFailure(op, c, err, "CopyFailure").With("srcPath", src).With("destPath", dest)
	}
	return map[string]any{"Id": c.ID, "Path": written}, nil
}

func (e *Engine) removeFromContainer(ctx context.Context, call *Request) (any, error) {
	const op = "removeFromContainer"
	list, st, c, err := e.containerCall(op, "InvalidRemovePathParameters", call, 2)
	if err != nil {
		return nil, err
	}
	p, _, err := stringParam(list[1], "path")
	if err != nil || p == "" {
		reason := "path is required"
		if err != nil {
			reason = err.Error()
		}
		return nil, errcat.New(op, "InvalidRemovePathParameters", reason, nil).With("containerId", c.ID)
	}
	fail := func(class string, err error) *errcat.Error {
		return errcat.New(op, class, err.Error(), err).With("containerId", c.ID).With("path", p)
	}
	var removed string
	err = e.changeFiles(ctx, st, call, c.ID, func(root treeops.Root) (err error) {
		removed, err = treeops.Remove(root, p)
		return err
	})
	switch {
	case errors.Is(err, bundle.ErrPathNotFound):
		return nil, fail("PathNotFoundInContainer", err)
	case err != nil:
		return nil, changeFailure(op, c, err, "RemovePathFailure").With("path", p)
	}
	return map[string]any{"Id": c.ID, "Path": removed}, nil
}

// changeFiles runs change on the root the container's files change
// through, holding the container's lock: no start, stop or removal comes
// between finding that root and writing to it.
func (e *Engine) changeFiles(ctx context.Context, st *store.Store, call *Request, id string, change func(root treeops.Root) error) error {
	return e.lifecycle(st, call).Change(ctx, id, func(c store.Container) error {
		root, err := changeRoot(ctx, st, c)
		if err != nil {
			return err
		}
		return change(root)
	})
}

// changeFailure is op's error for a failure to change container c's files,
// of class fallback when it is none of the lifecycle's own.
func changeFailure(op string, c store.Container, err error, fallback string) *errcat.Error {
	class := fallback
	switch {
	case errors.Is(err, context.Canceled):
		class = "AbortError"
	case errors.Is(err, lifecycle.ErrBundleMissing):
		class = "ContainerBundleNotFound"
	case errors.Is(err, lifecycle.ErrGone):
		class = "ContainerNotFound"
	}
	e := errcat.New(op, class, err.Error(), err).With("containerId", c.ID)
	if class == "ContainerBundleNotFound" {
		e.With("bundleHashId", c.ID)
	}
	return e
}

// changeRoot is where changes to a container's files go: a running or
// paused container's mounted root, as docker cp writes through it (never
// the upper directory of a live overlay), else its layer stack.
func changeRoot(ctx context.Context, st *store.Store, c store.Container) (treeops.Root, error) {
	if !lifecycle.Alive(c) {
		stack, err := lifecycle.Stack(ctx, st, c)
		return treeops.Root{Root: bundle.Root{Layers: stack}}, err
	}
	// An ordinary user's rootfs is mounted only in its monitor's mount
	// namespace; treeops reaches it there from the user-namespace helper.
	rootfs := lifecycle.Rootfs(st, c)
	var mounted unix.Statfs_t
	if err := unix.Statfs(rootfs, &mounted); err != nil {
		return treeops.Root{}, fmt.Errorf("%w: the running container's root %s: %v", lifecycle.ErrBundleMissing, rootfs, err)
	}
	if mounted.Type != unix.OVERLAYFS_SUPER_MAGIC {
		return treeops.Root{}, fmt.Errorf("the running container's root %s is not mounted", rootfs)
	}
	root := treeops.Root{Root: bundle.Root{Mounted: rootfs}}
	if os.Geteuid() != 0 {
		root.Join = c.Run.MonitorPid
	}
	return root, nil
}
