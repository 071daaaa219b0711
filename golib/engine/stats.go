package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/k3-core/k3-core/golib/cgroupstats"
	"github.com/k3-core/k3-core/golib/errcat"
)

// StatsSample is one reading of a container's cgroups, shaped as docker's
// stats (the JS layer adds precpu_stats and the computed figures).
type StatsSample struct {
	Read        string      `json:"read"`
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	CPUStats    StatsCPU    `json:"cpu_stats"`
	MemoryStats StatsMemory `json:"memory_stats"`
	PidsStats   StatsPids   `json:"pids_stats"`
}

type StatsCPU struct {
	CPUUsage struct {
		TotalUsage uint64 `json:"total_usage"`
	} `json:"cpu_usage"`
	SystemCPUUsage uint64 `json:"system_cpu_usage"`
	OnlineCPUs     int    `json:"online_cpus"`
}

type StatsMemory struct {
	Usage uint64            `json:"usage"`
	Limit uint64            `json:"limit"`
	Stats map[string]uint64 `json:"stats"`
}

type StatsPids struct {
	Current uint64 `json:"current"`
	Limit   uint64 `json:"limit,omitempty"`
}

// containerStats(id) reads the CPU, memory and task counts of a running
// (or paused) container from its cgroups, found through the host's
// /proc/<init>/cgroup. A container that shares its cgroups with its
// k3-monitor has none of its own (a host without cgroup delegation):
// its figures would be the monitor's, so it is StatsUnavailable.
func (e *Engine) containerStats(ctx context.Context, call *Request) (any, error) {
	const op = "containerStats"
	_, _, c, err := e.containerCall(op, "InvalidContainerStatsParameters", call, 1)
	if err != nil {
		return nil, err
	}
	if c.State != "running" && c.State != "paused" {
		return nil, errcat.New(op, "ContainerNotRunning", fmt.Sprintf("container %s is %s", c.Name, c.State), nil).With("containerId", c.ID)
	}
	unavailable := func(err error) error {
		return errcat.New(op, "StatsUnavailable", err.Error(), err).With("containerId", c.ID)
	}
	paths, err := cgroupstats.PathsOf(c.Run.Pid)
	if err != nil || initGone(c.Run.Pid) {
		return nil, errcat.New(op, "ContainerNotRunning", fmt.Sprintf("container %s exited", c.Name), err).With("containerId", c.ID)
	}
	if monitor, err := cgroupstats.PathsOf(c.Run.MonitorPid); err == nil && monitor.Same(paths) {
		return nil, unavailable(fmt.Errorf("%w: the container is in the same cgroups as its monitor (no cgroup delegation on this host?)", cgroupstats.ErrUnavailable))
	}
	sample, err := cgroupstats.Read(paths)
	switch {
	case err != nil && initGone(c.Run.Pid):
		return nil, errcat.New(op, "ContainerNotRunning", fmt.Sprintf("container %s exited", c.Name), err).With("containerId", c.ID)
	case err != nil:
		return nil, unavailable(err)
	}
	system, online, err := cgroupstats.HostCPU()
	if err != nil {
		return nil, unavailable(err)
	}
	hostMemory, err := cgroupstats.HostMemory()
	if err != nil {
		return nil, unavailable(err)
	}
	out := StatsSample{Read: time.Now().UTC().Format(time.RFC3339Nano), ID: c.ID, Name: "/" + c.Name}
	out.CPUStats.CPUUsage.TotalUsage = sample.CPUUsage
	out.CPUStats.SystemCPUUsage, out.CPUStats.OnlineCPUs = system, online
	// As docker: no limit, or one above the host's memory, is the host's memory.
	out.MemoryStats = StatsMemory{Usage: sample.MemoryUsage, Limit: sample.MemoryLimit, Stats: sample.MemoryStats}
	if out.MemoryStats.Limit == 0 || out.MemoryStats.Limit > hostMemory {
		out.MemoryStats.Limit = hostMemory
	}
	out.PidsStats = StatsPids{Current: sample.Pids, Limit: sample.PidsLimit}
	return out, nil
}
