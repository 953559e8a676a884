//! Streams as queues: operations are submitted with the clock of what must finish first, and
//! executed only when the host observes a stream, an event or a context. Every executed
//! operation's memory accesses are checked against those of operations on other streams that
//! are not ordered with it: a conflict is a cross-stream race, which ends the context like a
//! device fault does.

use std::sync::Arc;

use crate::abi::*;
use crate::access::{AccessSet, Kind};
use crate::clock::Clock;
use crate::report::report;
use crate::state::{handle, Done, Driver, Fault, Tag};

/// Queued host data plus freed-but-mapped memory above which queued work runs without being
/// observed (see [`Driver::relieve_memory_pressure`]).
pub const PRESSURE_BYTES: u64 = 1 << 30;

/// One unit of queued work.
pub struct Op {
    pub seq: u64,
    pub stream: u64,
    pub ctx: u64,
    /// Everything that must finish before this operation (itself included).
    pub clock: Clock,
    pub kind: OpKind,
    /// What it is, for reports: "kernel `fill` (launch 12)", "memcpy HtoD of 64 bytes to 0x...".
    pub what: String,
}

pub enum OpKind {
    Kernel {
        sim: Arc<ptxsim::Module>,
        name: String,
        cfg: ptxsim::LaunchConfig,
        params: Vec<ptxsim::ParamValue>,
    },
    HtoD {
        dst: u64,
        data: Vec<u8>,
    },
    DtoH {
        src: u64,
        len: usize,
    },
    DtoD {
        dst: u64,
        src: u64,
        len: usize,
    },
    Memset {
        dst: u64,
        pattern: Vec<u8>,
        count: usize,
    },
    /// A stream-ordered allocation becoming valid (`cuMemAllocAsync`).
    Alloc {
        addr: u64,
        len: u64,
    },
    /// A stream-ordered free (`cuMemFreeAsync`).
    Free {
        addr: u64,
        len: u64,
    },
    /// An event record: stamps the event's simulated time.
    EventMark {
        event: u64,
        generation: u64,
    },
}

/// Modelled device costs for the simulated clock behind `cuEventElapsedTime`. The figures are
/// of the order of an H100's but this is a cost model, not a measurement: the vgpu runs kernels
/// on the CPU and its elapsed times say nothing about real performance.
mod cost {
    /// Fixed cost of any operation.
    pub const OP_NS: f64 = 2_000.0;
    /// Host <-> device copies: 25 GB/s.
    pub const PCIE_BYTES_PER_NS: f64 = 25.0;
    /// Device memory traffic of copies and memsets: 2 TB/s.
    pub const DRAM_BYTES_PER_NS: f64 = 2_000.0;
    /// Kernel instructions (one thread's instruction counts once) per ns per multiprocessor:
    /// 128 lanes at about 1.5 GHz.
    pub const INSTRUCTIONS_PER_NS_PER_SM: f64 = 192.0;
}

impl Driver {
    /// Queues `kind` on `stream`; returns its number there.
    pub fn submit(&mut self, stream: u64, kind: OpKind, what: String) -> u64 {
        let Some(s) = self.streams.get(&stream) else {
            return 0;
        };
        let ctx = s.ctx;
        let mut clock = s.clock.clone();
        clock.join(&self.host_clock);
        // The legacy default stream waits for all earlier work of the context's blocking
        // streams, and they wait for its earlier work.
        if s.legacy {
            for other in self.streams.values() {
                if other.ctx == ctx && other.blocking {
                    clock.join(&other.clock);
                }
            }
        } else if s.blocking {
            if let Some(null) = self
                .contexts
                .get(&ctx)
                .and_then(|c| self.streams.get(&c.null_stream))
            {
                clock.join(&null.clock);
            }
        }
        let Some(s) = self.streams.get_mut(&stream) else {
            return 0;
        };
        s.submitted += 1;
        let seq = s.submitted;
        clock.raise(stream, seq);
        s.clock = clock.clone();
        s.queue.push_back(Op {
            seq,
            stream,
            ctx,
            clock,
            kind,
            what: format!("{what} on stream {}", stream_name(stream, s.legacy)),
        });
        seq
    }

    /// The host waits for everything `target` covers: runs it (what it depends on first), then
    /// the rest of the queued work in the process, and from then on orders every new operation
    /// after it. Returns the sticky error of `ctx`, if any.
    pub fn observe(&mut self, target: &Clock, ctx: u64) -> Result<(), CUresult> {
        self.run_clock(target);
        self.host_clock.join(target);
        self.run_everything();
        self.prune_history();
        self.check_fault(ctx)
    }

    /// Observes everything queued on `stream` (and what its event waits reach).
    pub fn observe_stream(&mut self, stream: u64) -> Result<(), CUresult> {
        let Some(s) = self.streams.get(&stream) else {
            return Ok(());
        };
        let (target, ctx) = (s.clock.clone(), s.ctx);
        self.observe(&target, ctx)
    }

    /// Observes every stream of `ctx`.
    pub fn observe_context(&mut self, ctx: u64) -> Result<(), CUresult> {
        let mut target = self
            .contexts
            .get(&ctx)
            .map_or_else(Clock::new, |c| c.retired.clone());
        for s in self.streams.values().filter(|s| s.ctx == ctx) {
            target.join(&s.clock);
        }
        self.observe(&target, ctx)
    }

    /// Runs every queued operation of `ctx` (teardown: nobody will observe it).
    pub fn run_context(&mut self, ctx: u64) {
        for s in self.streams_of(ctx) {
            let n = self.streams.get(&s).map_or(0, |s| s.submitted);
            self.run_stream_to(s, n);
        }
    }

    /// Keeps unobserved work from holding the host's memory: once queued host-to-device data
    /// and freed-but-mapped allocations pass [`PRESSURE_BYTES`], the queued work runs (a
    /// schedule the device could have chosen; the host has observed nothing) and freed memory
    /// is unmapped at once. An access concurrent with such a free then faults
    /// (CUDA_ERROR_ILLEGAL_ADDRESS) instead of being reported as a race with it.
    pub fn relieve_memory_pressure(&mut self) {
        let staged: u64 = self
            .streams
            .values()
            .flat_map(|s| s.queue.iter())
            .map(|op| match &op.kind {
                OpKind::HtoD { data, .. } => data.len() as u64,
                _ => 0,
            })
            .sum();
        let freed: u64 = self
            .allocations
            .values()
            .filter(|a| a.freeing)
            .map(|a| a.len)
            .sum();
        if staged + freed <= PRESSURE_BYTES {
            return;
        }
        self.run_everything();
        let released: Vec<u64> = self
            .allocations
            .iter()
            .filter(|(_, a)| a.freed_by.is_some())
            .map(|(&addr, _)| addr)
            .collect();
        for addr in released {
            self.release_allocation(addr);
        }
    }

    fn run_everything(&mut self) {
        let all: Vec<(u64, u64)> = self
            .streams
            .iter()
            .filter(|(_, s)| !s.queue.is_empty())
            .map(|(&id, s)| (id, s.submitted))
            .collect();
        for (s, n) in all {
            self.run_stream_to(s, n);
        }
    }

    fn run_clock(&mut self, target: &Clock) {
        for &(s, n) in target.entries() {
            self.run_stream_to(s, n);
        }
    }

    /// Executes the operations of `stream` up to number `n`, each after what it depends on.
    pub fn run_stream_to(&mut self, stream: u64, n: u64) {
        loop {
            let Some(s) = self.streams.get_mut(&stream) else {
                return;
            };
            if s.done >= n {
                return;
            }
            let Some(op) = s.queue.pop_front() else {
                return;
            };
            for &(other, m) in op.clock.entries() {
                if other != stream {
                    self.run_stream_to(other, m);
                }
            }
            let seq = op.seq;
            self.execute(op);
            if let Some(s) = self.streams.get_mut(&stream) {
                s.done = s.done.max(seq);
            }
        }
    }

    /// Forgets executed operations that nothing submitted from now on can be concurrent with:
    /// the host has observed them and every queued operation is ordered after them.
    pub fn prune_history(&mut self) {
        let fronts: Vec<&Clock> = self
            .streams
            .values()
            .filter_map(|s| s.queue.front().map(|op| &op.clock))
            .collect();
        let host = &self.host_clock;
        let settled = |stream: u64, seq: u64| {
            host.covers(stream, seq) && fronts.iter().all(|c| c.covers(stream, seq))
        };
        self.history.retain(|d| !settled(d.stream, d.seq));
        let released: Vec<u64> = self
            .allocations
            .iter()
            .filter(|(_, a)| a.freed_by.is_some_and(|(s, n)| settled(s, n)))
            .map(|(&addr, _)| addr)
            .collect();
        for addr in released {
            self.release_allocation(addr);
        }
        self.forget_settled_streams();
    }

    /// Drops destroyed streams from every clock once nothing they did is left to check: no
    /// history entry, so no race can involve them. Keeps clocks (copied into every operation)
    /// from growing with every stream a long process ever created.
    fn forget_settled_streams(&mut self) {
        let dead: Vec<u64> = self
            .host_clock
            .entries()
            .iter()
            .map(|&(s, _)| s)
            .filter(|s| !self.streams.contains_key(s))
            .filter(|s| self.history.iter().all(|d| d.stream != *s))
            .collect();
        for s in dead {
            self.host_clock.forget(s);
            for stream in self.streams.values_mut() {
                stream.clock.forget(s);
            }
            for c in self.contexts.values_mut() {
                c.retired.forget(s);
            }
            for e in self.events.values_mut() {
                if let Some(r) = e.record.as_mut() {
                    r.clock.forget(s);
                }
            }
        }
    }

    fn execute(&mut self, mut op: Op) {
        let faulted = self.contexts.get(&op.ctx).is_none_or(|c| c.fault.is_some());
        if faulted {
            // A faulted context's device stops: its queued work never runs.
            return;
        }
        let mut access = AccessSet::new();
        let result = self.perform(&op, &mut access);
        if let OpKind::HtoD { data, .. } = &mut op.kind {
            let buf = std::mem::take(data);
            self.unstage(buf);
        }
        match result {
            Ok(ns) => self.sim_time_ns += ns,
            Err(fault) => {
                self.fault(op.ctx, fault);
                return;
            }
        }
        access.normalize();
        if access.is_empty() {
            return;
        }
        if let Some(fault) = self.use_after_free(&op, &access) {
            self.fault(op.ctx, fault);
            return;
        }
        let race = self.history.iter().rev().find_map(|d| {
            if d.stream == op.stream || op.clock.covers(d.stream, d.seq) {
                return None;
            }
            d.access.conflict(&access).map(|c| {
                let msg = c.describe(&d.what, &op.what)
                    + ", and no event wait or synchronisation orders the two";
                (d.ctx, msg)
            })
        });
        if let Some((other_ctx, msg)) = race {
            // Both contexts' results are undefined: both end.
            let fault = Fault {
                code: CUDA_ERROR_LAUNCH_FAILED,
                report: format!("cross-stream race: {msg}"),
            };
            report(&fault.report);
            if other_ctx != op.ctx {
                self.end_context(other_ctx, fault.clone());
            }
            self.end_context(op.ctx, fault);
        }
        self.history.push(Done {
            ctx: op.ctx,
            stream: op.stream,
            seq: op.seq,
            what: op.what,
            access,
        });
    }

    /// Executes one operation, recording what it touches; returns its modelled duration.
    fn perform(&mut self, op: &Op, access: &mut AccessSet) -> Result<f64, Fault> {
        let mem_fault = |e: ptxsim::SimError| Fault {
            code: CUDA_ERROR_ILLEGAL_ADDRESS,
            report: format!("{}: {e}", op.what),
        };
        match &op.kind {
            OpKind::Kernel {
                sim,
                name,
                cfg,
                params,
            } => {
                let sms = f64::from(self.config.multiprocessors);
                let Some(c) = self.contexts.get_mut(&op.ctx) else {
                    return Ok(0.0);
                };
                let mut watcher = AccessWatcher {
                    access,
                    last_global: None,
                };
                let options = ptxsim::LaunchOptions::default();
                let launched =
                    sim.launch_with(name, cfg, params, &mut c.memory, &options, &mut watcher);
                let last_global = watcher.last_global;
                let stats = launched.map_err(|e| {
                    let mut fault = kernel_fault(&op.what, e);
                    if let Some(addr) =
                        last_global.filter(|_| fault.code == CUDA_ERROR_ILLEGAL_ADDRESS)
                    {
                        fault.report += &self.foreign_note(op.ctx, addr);
                    }
                    fault
                })?;
                Ok(cost::OP_NS
                    + stats.instructions as f64 / (sms * cost::INSTRUCTIONS_PER_NS_PER_SM))
            }
            OpKind::HtoD { dst, data } => {
                self.write_device(*dst, data).map_err(mem_fault)?;
                access.add(Kind::Write, *dst, data.len() as u64);
                Ok(cost::OP_NS + data.len() as f64 / cost::PCIE_BYTES_PER_NS)
            }
            OpKind::DtoH { src, len } => {
                let bytes = self.read_device(*src, *len).map_err(mem_fault)?;
                self.outputs.insert((op.stream, op.seq), bytes);
                access.add(Kind::Read, *src, *len as u64);
                Ok(cost::OP_NS + *len as f64 / cost::PCIE_BYTES_PER_NS)
            }
            OpKind::DtoD { dst, src, len } => {
                let bytes = self.read_device(*src, *len).map_err(mem_fault)?;
                self.write_device(*dst, &bytes).map_err(mem_fault)?;
                access.add(Kind::Read, *src, *len as u64);
                access.add(Kind::Write, *dst, *len as u64);
                Ok(cost::OP_NS + 2.0 * *len as f64 / cost::DRAM_BYTES_PER_NS)
            }
            OpKind::Memset {
                dst,
                pattern,
                count,
            } => {
                let total = pattern.len() * count;
                let chunk: Vec<u8> = pattern
                    .iter()
                    .copied()
                    .cycle()
                    .take(total.min(1 << 20))
                    .collect();
                let mut at = 0usize;
                while at < total {
                    let n = chunk.len().min(total - at);
                    self.write_device(*dst + at as u64, &chunk[..n])
                        .map_err(mem_fault)?;
                    at += n;
                }
                access.add(Kind::Write, *dst, total as u64);
                Ok(cost::OP_NS + total as f64 / cost::DRAM_BYTES_PER_NS)
            }
            OpKind::Alloc { addr, len } => {
                access.add(Kind::Write, *addr, *len);
                Ok(cost::OP_NS)
            }
            OpKind::Free { addr, len } => {
                access.add(Kind::Write, *addr, *len);
                if let Some(a) = self.allocations.get_mut(addr) {
                    a.freed_by = Some((op.stream, op.seq));
                }
                Ok(cost::OP_NS)
            }
            OpKind::EventMark { event, generation } => {
                let now = self.sim_time_ns;
                if let Some(r) = self
                    .events
                    .get_mut(event)
                    .and_then(|e| e.record.as_mut())
                    .filter(|r| r.generation == *generation)
                {
                    r.time_ns = Some(now);
                }
                Ok(0.0)
            }
        }
    }

    /// Why an address a kernel of `ctx` faulted on is not mapped there, if it is memory of
    /// another context.
    fn foreign_note(&self, ctx: u64, addr: u64) -> String {
        match self.allocation_at(addr) {
            Some((base, a)) if a.ctx != ctx => format!(
                " (0x{addr:x} is in allocation 0x{base:x} of context {:?} on device {}: memory \
                 of another context is not mapped in this one)",
                handle(Tag::Context, a.ctx),
                a.device
            ),
            _ => String::new(),
        }
    }

    /// An access, ordered after a stream-ordered free, to the memory it freed (which stays
    /// mapped for a while: see [`crate::state::Allocation::freed_by`]). An access concurrent
    /// with the free is left to the race check.
    fn use_after_free(&self, op: &Op, access: &AccessSet) -> Option<Fault> {
        if matches!(op.kind, OpKind::Free { .. }) {
            return None;
        }
        let ranges = [&access.reads, &access.writes, &access.atomics];
        ranges
            .iter()
            .flat_map(|r| r.ranges())
            .find_map(|&(start, _)| {
                let (base, a) = self.allocation_at(start)?;
                let (s, n) = a.freed_by?;
                op.clock.covers(s, n).then(|| Fault {
                    code: CUDA_ERROR_ILLEGAL_ADDRESS,
                    report: format!(
                    "{} accessed 0x{start:x} in allocation 0x{base:x}, which a cuMemFreeAsync on \
                     stream {:?} ordered before it freed",
                    op.what,
                    handle(Tag::Stream, s)
                ),
                })
            })
    }

    /// Ends context `ctx` with `fault`: reported, sticky, and its queued work dropped.
    pub fn fault(&mut self, ctx: u64, fault: Fault) {
        report(&fault.report);
        self.end_context(ctx, fault);
    }

    /// Makes `fault` the sticky error of `ctx` (unless it has one) and drops its queued work.
    fn end_context(&mut self, ctx: u64, fault: Fault) {
        let Some(c) = self.contexts.get_mut(&ctx) else {
            return;
        };
        if c.fault.is_none() {
            c.fault = Some(fault);
        }
        for s in self.streams.values_mut().filter(|s| s.ctx == ctx) {
            s.queue.clear();
            s.done = s.submitted;
        }
    }
}

/// Collects a kernel's global memory accesses.
struct AccessWatcher<'a> {
    access: &'a mut AccessSet,
    /// The last global address accessed (a faulting access is reported before it faults).
    last_global: Option<u64>,
}

impl ptxsim::Observer for AccessWatcher<'_> {
    #[inline]
    fn access(&mut self, event: &ptxsim::trace::Access) {
        use ptxsim::trace::{AccessKind, MemSpace};
        if event.space != MemSpace::Global {
            return;
        }
        let kind = match event.kind {
            AccessKind::Load => Kind::Read,
            AccessKind::Store => Kind::Write,
            AccessKind::Atomic => Kind::Atomic,
        };
        self.last_global = Some(event.addr);
        self.access.add(kind, event.addr, u64::from(event.bytes));
    }
}

/// How a stream is named in reports.
pub fn stream_name(id: u64, legacy: bool) -> String {
    if legacy {
        format!("{:?} (the legacy default stream)", handle(Tag::Stream, id))
    } else {
        format!("{:?}", handle(Tag::Stream, id))
    }
}

/// The `CUresult` a hardware fault of this kind gives, with ptxsim's report.
fn kernel_fault(what: &str, e: ptxsim::SimError) -> Fault {
    let text = e.to_string();
    let code = match &e {
        ptxsim::SimError::Fault { msg, .. } if msg.contains("misaligned") => {
            CUDA_ERROR_MISALIGNED_ADDRESS
        }
        ptxsim::SimError::Fault { msg, .. }
            if msg.contains("out of bounds") || msg.contains("not inside any allocation") =>
        {
            CUDA_ERROR_ILLEGAL_ADDRESS
        }
        ptxsim::SimError::Fault { msg, .. } if msg.contains("exceeded its limit") => {
            CUDA_ERROR_LAUNCH_TIMEOUT
        }
        ptxsim::SimError::Memory(_) => CUDA_ERROR_ILLEGAL_ADDRESS,
        _ => CUDA_ERROR_LAUNCH_FAILED,
    };
    Fault {
        code,
        report: format!("{what}: {text}"),
    }
}
