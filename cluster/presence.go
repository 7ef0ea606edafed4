package cluster

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Duty across nodes. Each node keeps its own registry of managers on duty (its doors know
// their connections) and announces it on <prefix>.cluster.duty.<node>: an organisation as soon
// as its managers change there, and everything every heartbeat. Every node keeps what the
// others announced, each entry stamped with when it was last heard. A node that stops says
// goodbye; a node that dies stops announcing, and its managers fall off duty everywhere after
// node_timeout. No store and no JetStream: the truth lives on the nodes holding the
// connections, and NATS only carries it. A node that joins (or gets NATS back) asks the others
// to announce at once instead of waiting for their heartbeat.

// Local is the node's own duty registry.
type Local interface {
	OnDuty(org string) []string
	Snapshot() map[string][]string
}

// dutyAnnouncement is one message of a node's duty.
type dutyAnnouncement struct {
	Node string `json:"node"`
	// Orgs maps an organisation to its managers on duty on Node; an empty list means none.
	Orgs map[string][]string `json:"orgs,omitempty"`
	// Bye: the node is stopping; forget all it announced.
	Bye bool `json:"bye,omitempty"`
}

// maxOrgsPerAnnouncement keeps heartbeat messages well below NATS's payload limit.
const maxOrgsPerAnnouncement = 500

type remoteDuty struct {
	managers []string
	seen     time.Time
}

// Duty answers "who is on duty" for the whole cluster: the local registry plus what the
// other nodes announced within node_timeout. Call Changed when the local registry changes.
type Duty struct {
	n     *Node
	local Local
	now   func() time.Time

	mu     sync.Mutex
	remote map[string]map[string]remoteDuty // node → org → managers
	dirty  map[string]bool                  // orgs to announce now
	all    bool                             // announce everything now
	wake   chan struct{}
}

func newDuty(n *Node) *Duty {
	return &Duty{n: n, now: time.Now, remote: map[string]map[string]remoteDuty{}, dirty: map[string]bool{},
		wake: make(chan struct{}, 1)}
}

// Duty returns the cluster-wide duty over the node's local registry; set it once,
// before Run.
func (n *Node) Duty(local Local) *Duty {
	n.duty.local = local
	return n.duty
}

// OnDuty returns the managers of org on duty on any node, sorted.
func (p *Duty) OnDuty(org string) []string {
	out := p.local.OnDuty(org)
	cutoff := p.now().Add(-p.n.cfg.NodeTimeout)
	p.mu.Lock()
	for _, orgs := range p.remote {
		if d, ok := orgs[org]; ok && d.seen.After(cutoff) {
			out = append(out, d.managers...)
		}
	}
	p.mu.Unlock()
	slices.Sort(out)
	return slices.Compact(out)
}

// Changed announces org's managers of this node to the others, soon.
func (p *Duty) Changed(org string) {
	p.mu.Lock()
	p.dirty[org] = true
	p.mu.Unlock()
	p.poke()
}

func (p *Duty) resync() {
	p.mu.Lock()
	p.all = true
	p.mu.Unlock()
	p.poke()
}

func (p *Duty) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run announces changes as they come and everything every heartbeat; all announcements leave
// from this one goroutine, so they reach the others in the order they were made.
func (p *Duty) run(ctx context.Context) {
	sub, err := p.n.nc.Subscribe(p.n.control("duty", "*"), p.receive)
	if err != nil {
		p.n.log.Error("cluster: duty subscription failed", "err", err.Error())
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	syncSub, err := p.n.nc.Subscribe(p.n.control("dutysync"), func(*nats.Msg) { p.resync() })
	if err != nil {
		p.n.log.Error("cluster: duty subscription failed", "err", err.Error())
		return
	}
	defer func() { _ = syncSub.Unsubscribe() }()
	// Ask the others for their duty, and give ours.
	_ = p.n.nc.Publish(p.n.control("dutysync"), nil)
	p.resync()
	tick := time.NewTicker(p.n.cfg.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			p.mu.Lock()
			p.all = true
			p.mu.Unlock()
			p.prune()
		case <-p.wake:
		}
		p.announce()
	}
}

// announce publishes what is dirty (everything on a heartbeat).
func (p *Duty) announce() {
	p.mu.Lock()
	all, dirty := p.all, p.dirty
	p.all, p.dirty = false, map[string]bool{}
	p.mu.Unlock()
	orgs := map[string][]string{}
	if all {
		orgs = p.local.Snapshot()
	}
	for org := range dirty {
		if _, done := orgs[org]; !done {
			orgs[org] = p.local.OnDuty(org) // maybe empty: "none here any more"
		}
	}
	batch := map[string][]string{}
	flush := func() {
		if len(batch) == 0 && !all {
			return
		}
		p.publish(dutyAnnouncement{Node: p.n.cfg.Node, Orgs: batch})
		batch = map[string][]string{}
	}
	for org, managers := range orgs {
		if managers == nil {
			managers = []string{}
		}
		batch[org] = managers
		if len(batch) == maxOrgsPerAnnouncement {
			flush()
		}
	}
	flush() // on a heartbeat, even an empty one says "alive"
}

func (p *Duty) publish(a dutyAnnouncement) {
	data, err := json.Marshal(a)
	if err == nil {
		err = p.n.nc.Publish(p.n.control("duty", p.n.cfg.Node), data)
	}
	if err != nil {
		p.n.log.Debug("cluster: duty announcement failed", "err", err.Error())
	}
}

// bye tells the others that this node stops.
func (p *Duty) bye() { p.publish(dutyAnnouncement{Node: p.n.cfg.Node, Bye: true}) }

func (p *Duty) receive(m *nats.Msg) {
	var a dutyAnnouncement
	if err := json.Unmarshal(m.Data, &a); err != nil || a.Node == "" || a.Node == p.n.cfg.Node {
		return
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if a.Bye {
		delete(p.remote, a.Node)
		return
	}
	orgs := p.remote[a.Node]
	if orgs == nil {
		orgs = map[string]remoteDuty{}
		p.remote[a.Node] = orgs
	}
	for org, managers := range a.Orgs {
		if len(managers) == 0 {
			delete(orgs, org)
			continue
		}
		orgs[org] = remoteDuty{managers: managers, seen: now}
	}
}

// prune forgets what silent nodes announced, and their duplicate windows.
func (p *Duty) prune() {
	cutoff := p.now().Add(-p.n.cfg.NodeTimeout)
	p.mu.Lock()
	for node, orgs := range p.remote {
		for org, d := range orgs {
			if !d.seen.After(cutoff) {
				delete(orgs, org)
			}
		}
		if len(orgs) == 0 {
			delete(p.remote, node)
		}
	}
	p.mu.Unlock()
	p.n.forgetOrigins(p.now().Add(-3 * p.n.cfg.NodeTimeout))
}

// Remote returns the number of managers other nodes have on duty now.
func (p *Duty) Remote() int {
	cutoff := p.now().Add(-p.n.cfg.NodeTimeout)
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, orgs := range p.remote {
		for _, d := range orgs {
			if d.seen.After(cutoff) {
				n += len(d.managers)
			}
		}
	}
	return n
}
