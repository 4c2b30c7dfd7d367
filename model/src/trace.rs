//! One kernel launch in the emulator's trace mode, turned into warp requests.
//!
//! The emulator (emu/) runs the kernel's own source on the CPU and records every access the
//! kernel makes through its hooks (`bp_ld` / `bp_st` in kernels/common.cuh) with the source line
//! that made it. Here the accesses of each warp are grouped into the requests a GPU would
//! issue: lane `l`'s `k`-th access at site `s` and lane `m`'s `k`-th access at `s` are the same
//! warp instruction (exact while the warp's lanes run the same path; a divergent warp's lanes
//! that reach a site a different number of times are grouped by count, which is how the model
//! approximates reconvergence). Each request is then measured: sectors (32 B) and lines (128 B)
//! of global memory, shared-memory wavefronts (the most distinct 4-byte words any one of the 32
//! banks must serve, at least one per 128 bytes), active lanes, bytes.
//!
//! Sampling: only the first blocks of the grid run (until `max_blocks`, or until the events
//! reach `event_budget`), and each thread runs at most `max_iterations` iterations of its work
//! loop; the emulator counts the work items the sample ran and the launch's total, and every
//! count is scaled by their ratio (`TraceRun`).

use std::collections::HashMap;
use std::ffi::c_void;

use blurpool_emu::{AccessKind, Redirect, Sampling, TraceEvent, TraceRun};

/// Bytes per sector and per cache line.
pub const SECTOR: u64 = 32;
pub const LINE: u64 = 128;

/// How much of a launch to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Blocks at most (from block 0).
    pub max_blocks: u32,
    /// Work-loop iterations per thread at most (0: all).
    pub max_iterations: u32,
    /// Stop after the block in which the recorded events reach this many.
    pub event_budget: u64,
}

impl Sample {
    /// The suite's sample: 64 blocks (16,384 threads), one iteration each, ≤ 4M accesses.
    pub const SUITE: Sample = Sample {
        max_blocks: 64,
        max_iterations: 1,
        event_budget: 4_000_000,
    };
    /// Every block and iteration (tests on small shapes).
    pub const ALL: Sample = Sample {
        max_blocks: u32::MAX,
        max_iterations: 0,
        event_budget: u64::MAX,
    };
}

/// Where a request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Space {
    /// Global memory: one of the launch's buffers (its index).
    Global(u8),
    /// Shared memory (any address outside the buffers).
    Shared,
    /// A tensor-core mma (no memory).
    None,
}

/// One warp instruction's memory request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Index into [`LaunchTrace::sites`].
    pub site: u32,
    pub kind: AccessKind,
    pub space: Space,
    /// Bytes per lane.
    pub size: u8,
    /// Active lanes (1..=32).
    pub lanes: u8,
    /// Its sectors: `LaunchTrace::sectors[first..first + n]` (global requests only).
    pub first_sector: u32,
    pub n_sectors: u16,
    /// Distinct 128-byte lines (global).
    pub lines: u16,
    /// Shared-memory wavefronts (shared).
    pub wavefronts: u16,
    /// Distinct bytes the lanes touched.
    pub unique_bytes: u32,
}

/// A source site of the kernel: the line that made an access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// File name without directories, e.g. `strip.cuh`.
    pub file: String,
    pub line: u32,
}

impl Site {
    pub fn name(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// A traced launch: its requests per block (each block's warps interleaved round-robin, each
/// warp's requests in program order), the sites, and what the sample covered.
#[derive(Debug, Clone, Default)]
pub struct LaunchTrace {
    pub symbol: String,
    pub run: TraceRun,
    pub block_threads: u32,
    pub blocks: Vec<Vec<Request>>,
    /// Global sector ids of all requests: (buffer index << 48) | (byte offset / 32).
    pub sectors: Vec<u64>,
    pub sites: Vec<Site>,
    /// Accesses recorded.
    pub events: u64,
    /// Per buffer: one past the largest byte offset touched.
    pub touched: Vec<u64>,
}

impl LaunchTrace {
    /// Work items of the launch per item the sample ran (every count is multiplied by this).
    pub fn scale(&self) -> f64 {
        if self.run.items_sampled == 0 {
            return 0.0;
        }
        self.run.items_total.max(0) as f64 / self.run.items_sampled as f64
    }
    /// Warps the sample ran.
    pub fn warps_sampled(&self) -> u64 {
        self.run.blocks_run as u64 * self.block_threads.div_ceil(32) as u64
    }
}

/// A launch's device buffers, here host memory: zero-filled lazily (so the suite's largest
/// tensors cost address space, not memory), 256-byte aligned like cudaMalloc's.
pub struct Buffer {
    pub name: String,
    storage: Vec<u8>,
    start: usize,
    pub len: usize,
}

impl Buffer {
    pub fn zeroed(name: &str, len: usize) -> Buffer {
        // vec![0; n] is calloc: large ones are fresh zero pages, touched only where used.
        let storage = vec![0u8; len + 256];
        let start = (256 - (storage.as_ptr() as usize % 256)) % 256;
        Buffer {
            name: name.into(),
            storage,
            start,
            len,
        }
    }
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
    pub fn bytes(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
    pub fn ptr(&self) -> *const c_void {
        self.storage[self.start..].as_ptr() as *const c_void
    }
    pub fn ptr_mut(&mut self) -> *mut c_void {
        self.storage[self.start..].as_mut_ptr() as *mut c_void
    }
    fn range(&self) -> (u64, u64) {
        let b = self.ptr() as u64;
        (b, b + self.len as u64)
    }
}

/// Kernel-visible address ranges, for classifying accesses.
#[derive(Debug, Clone)]
pub struct AddressMap {
    ranges: Vec<(u64, u64)>,
}

impl AddressMap {
    pub fn new(bufs: &[&Buffer]) -> AddressMap {
        AddressMap {
            ranges: bufs.iter().map(|b| b.range()).collect(),
        }
    }
    /// Ranges given directly (the hook test's shadow buffers).
    pub fn from_ranges(ranges: Vec<(u64, u64)>) -> AddressMap {
        AddressMap { ranges }
    }
    fn find(&self, addr: u64) -> Option<(u8, u64)> {
        self.ranges
            .iter()
            .position(|&(lo, hi)| addr >= lo && addr < hi)
            .map(|i| (i as u8, addr - self.ranges[i].0))
    }
    pub fn len(&self) -> usize {
        self.ranges.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// One kernel launch to trace: the plan's symbol, grid, parameter block and pointers.
pub struct TraceLaunch<'a> {
    pub symbol: &'a str,
    pub grid: u32,
    pub block: u32,
    /// Bytes of dynamic shared memory (the launch's sharedMemBytes).
    pub shared: u32,
    pub params: &'a [u8],
    pub inputs: [*const c_void; 4],
    pub out: *mut c_void,
}

/// Runs `l` traced under `sample`, classifying addresses with `map`.
///
/// # Safety
/// As `blurpool_emu::launch_traced`: the pointers must address buffers holding what the
/// parameter block describes (the map's ranges are those buffers, or the `redirects`' `seen`
/// ranges), and `out` must not alias the inputs.
pub unsafe fn trace_launch(
    l: &TraceLaunch<'_>,
    map: &AddressMap,
    redirects: &[Redirect],
    sample: Sample,
) -> Result<LaunchTrace, String> {
    let mut t = LaunchTrace {
        symbol: l.symbol.to_string(),
        block_threads: l.block,
        touched: vec![0; map.len()],
        ..LaunchTrace::default()
    };
    let mut sites = SiteTable::default();
    let mut blocks_seen = 0u32;
    let mut on_block = |_block: u32, events: &[TraceEvent]| -> bool {
        t.events += events.len() as u64;
        let reqs = group_block(
            events,
            l.block,
            map,
            &mut sites,
            &mut t.sectors,
            &mut t.touched,
        );
        t.blocks.push(reqs);
        blocks_seen += 1;
        blocks_seen < sample.max_blocks && t.events < sample.event_budget
    };
    // SAFETY: the caller's contract (above).
    let run = unsafe {
        blurpool_emu::launch_traced(
            l.symbol,
            l.grid,
            l.block,
            l.shared,
            l.params.as_ptr() as *const c_void,
            l.inputs,
            l.out,
            Sampling {
                max_iterations: sample.max_iterations,
            },
            redirects,
            &mut on_block,
        )
    }?;
    t.run = run;
    t.sites = sites.sites;
    Ok(t)
}

#[derive(Default)]
pub(crate) struct SiteTable {
    ids: HashMap<(usize, u32), u32>,
    sites: Vec<Site>,
}

impl SiteTable {
    /// The sites in id order (tests building a trace by hand).
    #[cfg(test)]
    pub(crate) fn into_sites(self) -> Vec<Site> {
        self.sites
    }
    fn id(&mut self, e: &TraceEvent) -> u32 {
        let n = self.sites.len() as u32;
        *self.ids.entry(e.site_key()).or_insert_with(|| {
            let file = e.file().rsplit('/').next().unwrap_or("").to_string();
            self.sites.push(Site { file, line: e.line });
            n
        })
    }
}

struct Pending {
    site: u32,
    kind: AccessKind,
    size: u8,
    order: usize,
    lanes: Vec<u64>,
}

/// Groups one block's events into warp requests; returns them with the block's warps
/// interleaved round-robin.
pub(crate) fn group_block(
    events: &[TraceEvent],
    block: u32,
    map: &AddressMap,
    sites: &mut SiteTable,
    sectors: &mut Vec<u64>,
    touched: &mut [u64],
) -> Vec<Request> {
    let threads = block as usize;
    let mut per_thread: Vec<Vec<u32>> = vec![Vec::new(); threads];
    for (i, e) in events.iter().enumerate() {
        if let Some(v) = per_thread.get_mut(e.thread as usize) {
            v.push(i as u32);
        }
    }
    let ids: Vec<u32> = events.iter().map(|e| sites.id(e)).collect();
    let n_sites = sites.sites.len();
    let mut warps: Vec<Vec<Request>> = Vec::new();
    for w in 0..threads.div_ceil(32) {
        let mut index: HashMap<(u32, u32), usize> = HashMap::new();
        let mut pending: Vec<Pending> = Vec::new();
        for lane_events in per_thread.iter().take(threads).skip(w * 32).take(32) {
            let mut instance = vec![0u32; n_sites];
            for (seq, &ei) in lane_events.iter().enumerate() {
                let e = &events[ei as usize];
                let site = ids[ei as usize];
                let k = instance[site as usize];
                instance[site as usize] += 1;
                let slot = *index.entry((site, k)).or_insert_with(|| {
                    pending.push(Pending {
                        site,
                        kind: e.kind(),
                        size: e.size,
                        order: seq,
                        lanes: Vec::with_capacity(32),
                    });
                    pending.len() - 1
                });
                let p = &mut pending[slot];
                p.order = p.order.min(seq);
                p.lanes.push(e.addr);
            }
        }
        pending.sort_by_key(|p| p.order);
        warps.push(
            pending
                .into_iter()
                .map(|p| measure(p, map, sectors, touched))
                .collect(),
        );
    }
    // Round-robin over the block's warps: the order the L1 model sees them in.
    let mut out = Vec::with_capacity(warps.iter().map(Vec::len).sum());
    let mut pos = vec![0usize; warps.len()];
    loop {
        let mut any = false;
        for (w, reqs) in warps.iter().enumerate() {
            if let Some(r) = reqs.get(pos[w]) {
                out.push(*r);
                pos[w] += 1;
                any = true;
            }
        }
        if !any {
            break;
        }
    }
    out
}

/// Shared-memory wavefronts (128 bytes) a warp's share of one `wgmma.m64nNk16` reads, `n8` = N
/// / 8 (the event's size): the warpgroup's A tile (64 × 16 halves, 2 KB) and B tile (N × 16
/// halves) each read once for its 4 warps, a quarter to each: 4 + N / 16 (12 at N = 128). That
/// B is read once for the warpgroup, not once per warp, is the assumption the wgmma design rests
/// on (notes/kernels.md); read per warp it would be 4 + N / 4.
pub fn wgmma_wavefronts_per_warp(n8: u8) -> u16 {
    (2048 + 256 * n8 as u16) / 128 / 4
}

fn measure(p: Pending, map: &AddressMap, sectors: &mut Vec<u64>, touched: &mut [u64]) -> Request {
    let lanes = p.lanes.len().min(32) as u8;
    let mut r = Request {
        site: p.site,
        kind: p.kind,
        space: Space::None,
        size: p.size,
        lanes,
        first_sector: sectors.len() as u32,
        n_sectors: 0,
        lines: 0,
        wavefronts: 0,
        unique_bytes: 0,
    };
    if matches!(p.kind, AccessKind::Mma | AccessKind::Mark) || p.size == 0 {
        return r;
    }
    if p.kind == AccessKind::Wgmma {
        r.space = Space::Shared;
        r.wavefronts = wgmma_wavefronts_per_warp(p.size);
        return r;
    }
    let size = p.size as u64;
    let mut addrs = p.lanes;
    addrs.sort_unstable();
    addrs.dedup();
    r.unique_bytes = (addrs.len() as u64 * size) as u32;
    match map.find(addrs[0]) {
        Some((buf, _)) => {
            r.space = Space::Global(buf);
            let mut secs: Vec<u64> = Vec::with_capacity(addrs.len());
            let mut lines: Vec<u64> = Vec::with_capacity(addrs.len());
            for &a in &addrs {
                // Every lane of a site addresses the same buffer (one pointer per site).
                let (b, off) = map.find(a).unwrap_or((buf, 0));
                touched[b as usize] = touched[b as usize].max(off + size);
                for s in (off / SECTOR)..=((off + size - 1) / SECTOR) {
                    secs.push(((b as u64) << 48) | s);
                }
                for l in (off / LINE)..=((off + size - 1) / LINE) {
                    lines.push(((b as u64) << 48) | l);
                }
            }
            secs.sort_unstable();
            secs.dedup();
            lines.sort_unstable();
            lines.dedup();
            r.n_sectors = secs.len() as u16;
            r.lines = lines.len() as u16;
            sectors.extend_from_slice(&secs);
        }
        None => {
            r.space = Space::Shared;
            // 4-byte words per bank; a word read by several lanes is one (a broadcast).
            let mut words: Vec<u64> = Vec::with_capacity(addrs.len() * 4);
            for &a in &addrs {
                for wd in (a / 4)..=((a + size - 1) / 4) {
                    words.push(wd);
                }
            }
            words.sort_unstable();
            words.dedup();
            let mut per_bank = [0u16; 32];
            for wd in &words {
                per_bank[(wd % 32) as usize] += 1;
            }
            let deepest = per_bank.iter().copied().max().unwrap_or(0);
            let by_bytes = (words.len() as u64 * 4).div_ceil(128) as u16;
            r.wavefronts = deepest.max(by_bytes).max(1);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(thread: u16, addr: u64, size: u8, kind: u8) -> TraceEvent {
        let k = match kind {
            0 => AccessKind::Load,
            1 => AccessKind::Store,
            _ => AccessKind::Mma,
        };
        TraceEvent::synthetic(addr, 7, thread, size, k)
    }

    #[test]
    fn a_coalesced_warp_load_is_one_request_of_four_sectors() {
        let base = 0x10000u64;
        let map = AddressMap::from_ranges(vec![(base, base + 4096)]);
        let events: Vec<TraceEvent> = (0..32).map(|t| ev(t, base + 4 * t as u64, 4, 0)).collect();
        let (mut sites, mut secs, mut touched) = (SiteTable::default(), Vec::new(), vec![0; 1]);
        let reqs = group_block(&events, 32, &map, &mut sites, &mut secs, &mut touched);
        assert_eq!(reqs.len(), 1);
        let r = reqs[0];
        assert_eq!(
            (r.lanes, r.n_sectors, r.lines, r.unique_bytes),
            (32, 4, 1, 128)
        );
        assert_eq!(r.space, Space::Global(0));
        assert_eq!(touched[0], 128);
    }

    #[test]
    fn strided_lanes_touch_a_sector_each() {
        let base = 0x10000u64;
        let map = AddressMap::from_ranges(vec![(base, base + (1 << 20))]);
        let events: Vec<TraceEvent> = (0..32)
            .map(|t| ev(t, base + 256 * t as u64, 2, 0))
            .collect();
        let (mut sites, mut secs, mut touched) = (SiteTable::default(), Vec::new(), vec![0; 1]);
        let reqs = group_block(&events, 32, &map, &mut sites, &mut secs, &mut touched);
        assert_eq!((reqs[0].n_sectors, reqs[0].lines), (32, 32));
    }

    #[test]
    fn repeated_site_instances_are_separate_requests_in_order() {
        let base = 0x10000u64;
        let map = AddressMap::from_ranges(vec![(base, base + (1 << 20))]);
        let mut events = Vec::new();
        for t in 0..64u16 {
            // each thread: two loads at the same site, then a store
            events.push(ev(t, base + 4 * t as u64, 4, 0));
            events.push(ev(t, base + 4096 + 4 * t as u64, 4, 0));
            events.push(ev(t, base + 8192 + 4 * t as u64, 4, 1));
        }
        let (mut sites, mut secs, mut touched) = (SiteTable::default(), Vec::new(), vec![0; 1]);
        let reqs = group_block(&events, 64, &map, &mut sites, &mut secs, &mut touched);
        // 2 warps × 3 requests, interleaved: w0 r0, w1 r0, w0 r1, ...
        assert_eq!(reqs.len(), 6);
        assert!(reqs.iter().all(|r| r.lanes == 32 && r.n_sectors == 4));
        let kinds: Vec<AccessKind> = reqs.iter().map(|r| r.kind).collect();
        assert_eq!(kinds[4], AccessKind::Store);
        assert_eq!(kinds[5], AccessKind::Store);
        let first = secs[reqs[0].first_sector as usize];
        let second = secs[reqs[1].first_sector as usize];
        assert_eq!(
            (first & 0xffff, second & 0xffff),
            (0, 4),
            "warp 0 then warp 1"
        );
    }

    #[test]
    fn shared_bank_conflicts_are_counted() {
        let map = AddressMap::from_ranges(vec![(0x10000, 0x20000)]);
        // 32 lanes, stride 32 words: every lane in bank 0 → 32 wavefronts
        let conflict: Vec<TraceEvent> = (0..32)
            .map(|t| ev(t, 0x900000 + 128 * t as u64, 4, 0))
            .collect();
        // stride 1 word: conflict-free, 1 wavefront; a broadcast: 1
        let free: Vec<TraceEvent> = (0..32)
            .map(|t| ev(t, 0x900000 + 4 * t as u64, 4, 0))
            .collect();
        let bcast: Vec<TraceEvent> = (0..32).map(|t| ev(t, 0x900000, 4, 0)).collect();
        // 16-byte accesses, consecutive: 512 bytes → 4 wavefronts
        let wide: Vec<TraceEvent> = (0..32)
            .map(|t| ev(t, 0x900000 + 16 * t as u64, 16, 0))
            .collect();
        for (events, want) in [(conflict, 32), (free, 1), (bcast, 1), (wide, 4)] {
            let (mut sites, mut secs, mut touched) = (SiteTable::default(), Vec::new(), vec![0; 1]);
            let reqs = group_block(&events, 32, &map, &mut sites, &mut secs, &mut touched);
            assert_eq!(reqs[0].space, Space::Shared);
            assert_eq!(reqs[0].wavefronts, want);
        }
    }
}
