//! The caches between a traced launch's requests and DRAM, and the counts they give.
//!
//! * L1 (per SM, shared by its resident blocks): LRU over 128-byte lines with 32-byte sector
//!   valid bits, sector-granular misses. Each sampled block gets its SM's L1 share: (L1 + shared
//!   capacity − the shared memory of the resident blocks) / resident blocks. The sample's blocks
//!   are consecutive, so on a GPU they sit on different SMs (the block scheduler deals blocks to
//!   SMs in turn); their L1 neighbours are far-away blocks whose data they do not share, which
//!   the share models as capacity lost. Global loads allocate; stores write through without
//!   allocating (Hopper's L1 is write-through).
//! * L2 (one, shared by all): LRU over lines with valid and dirty sector bits; it sees the L1
//!   misses and every store, the sampled blocks interleaved round-robin request by request (as
//!   if they ran at once). A missing sector is read from DRAM; stores allocate without a read
//!   (byte masks) and every dirty sector is written to DRAM once (at eviction or at the end).
//!
//! What this cannot see: reuse farther apart than the sample (its footprint is a few MB, far
//! below the 50 MB L2, so misses are the sample's compulsory ones), the L2's two partitions and
//! hashing, and timing (the order is an interleaving, not a schedule).

use std::num::NonZeroUsize;

use blurpool_emu::AccessKind;
use lru::LruCache;
use serde::Serialize;

use crate::trace::{LaunchTrace, Space, LINE, SECTOR};

/// Counts of one traced launch (for the sample; [`MemStats::scaled`] for the whole launch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MemStats {
    /// Global load requests, their sectors and lines, active lanes, requested bytes (lanes ×
    /// size), distinct bytes, requests with all 32 lanes active.
    pub ld_requests: f64,
    pub ld_sectors: f64,
    pub ld_lines: f64,
    pub ld_lanes: f64,
    pub ld_bytes: f64,
    pub ld_unique_bytes: f64,
    pub ld_full_warp: f64,
    /// Global stores, likewise.
    pub st_requests: f64,
    pub st_sectors: f64,
    pub st_lanes: f64,
    pub st_bytes: f64,
    /// Shared-memory requests, wavefronts, bytes.
    pub sh_requests: f64,
    pub sh_wavefronts: f64,
    pub sh_bytes: f64,
    /// Warp mma.sync instructions (m16n8k16), and wgmma's products in m16n8k16 units.
    pub mma: f64,
    /// Load sectors that hit in L1; sectors L1 asked of L2 (its load misses); of those, L2
    /// hits; DRAM sectors read and written.
    pub l1_hit_sectors: f64,
    pub l2_read_sectors: f64,
    pub l2_hit_sectors: f64,
    pub dram_read_sectors: f64,
    pub dram_write_sectors: f64,
    /// Global load requests by the farthest level one of their sectors came from: all sectors
    /// hit L1; some missed L1 but every miss hit L2; some came from DRAM. The latency bound
    /// charges each request its level's latency.
    pub ld_req_l1: f64,
    pub ld_req_l2: f64,
    pub ld_req_dram: f64,
    /// Σ over global and shared requests of the L1/shared stage's cycles:
    /// max(lsu_clk_per_request, lines, sectors / l1_sectors_per_clk) for global,
    /// max(lsu_clk_per_request, wavefronts / smem_wavefronts_per_clk) for shared.
    pub lsu_cycles: f64,
}

impl MemStats {
    /// Every count times `k`.
    pub fn scaled(&self, k: f64) -> MemStats {
        let mut s = *self;
        for v in s.fields_mut() {
            *v *= k;
        }
        s
    }
    /// Field-wise sum.
    pub fn add(&mut self, o: &MemStats) {
        let mut o = *o;
        for (a, b) in self.fields_mut().into_iter().zip(o.fields_mut()) {
            *a += *b;
        }
    }
    fn fields_mut(&mut self) -> [&mut f64; 24] {
        [
            &mut self.ld_requests,
            &mut self.ld_sectors,
            &mut self.ld_lines,
            &mut self.ld_lanes,
            &mut self.ld_bytes,
            &mut self.ld_unique_bytes,
            &mut self.ld_full_warp,
            &mut self.st_requests,
            &mut self.st_sectors,
            &mut self.st_lanes,
            &mut self.st_bytes,
            &mut self.sh_requests,
            &mut self.sh_wavefronts,
            &mut self.sh_bytes,
            &mut self.mma,
            &mut self.l1_hit_sectors,
            &mut self.l2_read_sectors,
            &mut self.l2_hit_sectors,
            &mut self.dram_read_sectors,
            &mut self.dram_write_sectors,
            &mut self.ld_req_l1,
            &mut self.ld_req_l2,
            &mut self.ld_req_dram,
            &mut self.lsu_cycles,
        ]
    }
    /// Sectors per global load request.
    pub fn sectors_per_load(&self) -> f64 {
        ratio(self.ld_sectors, self.ld_requests)
    }
    /// Requested bytes per active lane of the global loads.
    pub fn bytes_per_lane(&self) -> f64 {
        ratio(self.ld_bytes, self.ld_lanes)
    }
    /// Share of global load requests with all 32 lanes active.
    pub fn full_warp_share(&self) -> f64 {
        ratio(self.ld_full_warp, self.ld_requests)
    }
    /// Distinct bytes the loads use per byte of sectors they fetch into L1 (1 = every byte of
    /// every sector is used).
    pub fn sector_efficiency(&self) -> f64 {
        ratio(self.ld_unique_bytes, self.ld_sectors * SECTOR as f64)
    }
    /// Shared-memory wavefronts per request.
    pub fn wavefronts_per_shared(&self) -> f64 {
        ratio(self.sh_wavefronts, self.sh_requests)
    }
    /// L1 hit rate of the load sectors.
    pub fn l1_hit_rate(&self) -> f64 {
        ratio(self.l1_hit_sectors, self.ld_sectors)
    }
    /// DRAM bytes read and written.
    pub fn dram_bytes(&self) -> (f64, f64) {
        (
            self.dram_read_sectors * SECTOR as f64,
            self.dram_write_sectors * SECTOR as f64,
        )
    }
    /// Bytes between L1 and L2 (load misses + stores).
    pub fn l2_bytes(&self) -> f64 {
        (self.l2_read_sectors + self.st_sectors) * SECTOR as f64
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// Machine figures the simulation needs.
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// L1 bytes each sampled block gets.
    pub l1_bytes_per_block: u64,
    pub l2_bytes: u64,
    pub lsu_clk_per_request: f64,
    pub l1_sectors_per_clk: f64,
    pub smem_wavefronts_per_clk: f64,
}

/// Runs the trace's requests through the L1s and the L2.
pub fn simulate(t: &LaunchTrace, cfg: &CacheConfig) -> MemStats {
    let mut s = MemStats::default();
    let sector_bit = |id: u64| 1u8 << ((id % (LINE / SECTOR)) as u8);
    let line_of = |id: u64| id / (LINE / SECTOR);
    let l1_lines = NonZeroUsize::new((cfg.l1_bytes_per_block / LINE).max(1) as usize).unwrap();
    let l2_lines = NonZeroUsize::new((cfg.l2_bytes / LINE).max(1) as usize).unwrap();
    // Per block: its L1, and the L2 traffic it produces in order.
    // (is_store, sector, the block's load request it serves: u32::MAX for stores)
    let mut streams: Vec<Vec<(bool, u64, u32)>> = Vec::with_capacity(t.blocks.len());
    // Per block, per load request: 0 = all L1 hits, 1 = served by L2, 2 = some sector from DRAM.
    let mut levels: Vec<Vec<u8>> = Vec::with_capacity(t.blocks.len());
    for block in &t.blocks {
        let mut l1: LruCache<u64, u8> = LruCache::new(l1_lines);
        let mut to_l2 = Vec::new();
        let mut level = Vec::new();
        for r in block {
            let secs = &t.sectors
                [r.first_sector as usize..(r.first_sector as usize + r.n_sectors as usize)];
            match (r.kind, r.space) {
                (AccessKind::Mma, _) => s.mma += 1.0,
                (_, Space::None) => {}
                (_, Space::Shared) => {
                    // A warp's share of a wgmma (size N / 8) is N / 8 m16n8k16 products, and a
                    // shared request of its operands' wavefronts (trace.rs
                    // wgmma_wavefronts_per_warp) like any other.
                    let bytes = if r.kind == AccessKind::Wgmma {
                        s.mma += r.size as f64;
                        r.wavefronts as f64 * 128.0
                    } else {
                        r.lanes as f64 * r.size as f64
                    };
                    s.sh_requests += 1.0;
                    s.sh_wavefronts += r.wavefronts as f64;
                    s.sh_bytes += bytes;
                    s.lsu_cycles += cfg
                        .lsu_clk_per_request
                        .max(r.wavefronts as f64 / cfg.smem_wavefronts_per_clk);
                }
                (AccessKind::Load, Space::Global(_)) => {
                    let req = level.len() as u32;
                    level.push(0u8);
                    s.ld_requests += 1.0;
                    s.ld_sectors += secs.len() as f64;
                    s.ld_lines += r.lines as f64;
                    s.ld_lanes += r.lanes as f64;
                    s.ld_bytes += r.lanes as f64 * r.size as f64;
                    s.ld_unique_bytes += r.unique_bytes as f64;
                    if r.lanes == 32 {
                        s.ld_full_warp += 1.0;
                    }
                    s.lsu_cycles += cfg
                        .lsu_clk_per_request
                        .max(r.lines as f64)
                        .max(secs.len() as f64 / cfg.l1_sectors_per_clk);
                    for &id in secs {
                        let (line, bit) = (line_of(id), sector_bit(id));
                        match l1.get_mut(&line) {
                            Some(mask) if *mask & bit != 0 => s.l1_hit_sectors += 1.0,
                            Some(mask) => {
                                *mask |= bit;
                                to_l2.push((false, id, req));
                            }
                            None => {
                                l1.put(line, bit);
                                to_l2.push((false, id, req));
                            }
                        }
                    }
                }
                (_, Space::Global(_)) => {
                    s.st_requests += 1.0;
                    s.st_sectors += secs.len() as f64;
                    s.st_lanes += r.lanes as f64;
                    s.st_bytes += r.lanes as f64 * r.size as f64;
                    s.lsu_cycles += cfg
                        .lsu_clk_per_request
                        .max(r.lines as f64)
                        .max(secs.len() as f64 / cfg.l1_sectors_per_clk);
                    to_l2.extend(secs.iter().map(|&id| (true, id, u32::MAX)));
                }
            }
        }
        streams.push(to_l2);
        levels.push(level);
    }
    // The L2 sees the blocks' streams interleaved.
    let mut l2: LruCache<u64, (u8, u8)> = LruCache::new(l2_lines); // (valid, dirty)
    let mut pos = vec![0usize; streams.len()];
    loop {
        let mut any = false;
        for (b, st) in streams.iter().enumerate() {
            let Some(&(is_store, id, req)) = st.get(pos[b]) else {
                continue;
            };
            pos[b] += 1;
            any = true;
            let (line, bit) = (line_of(id), sector_bit(id));
            let mut from_dram = false;
            if !is_store {
                s.l2_read_sectors += 1.0;
            }
            let evicted = match l2.get_mut(&line) {
                Some((valid, dirty)) => {
                    if is_store {
                        *valid |= bit;
                        *dirty |= bit;
                    } else if *valid & bit != 0 {
                        s.l2_hit_sectors += 1.0;
                    } else {
                        *valid |= bit;
                        s.dram_read_sectors += 1.0;
                        from_dram = true;
                    }
                    None
                }
                None => {
                    if !is_store {
                        s.dram_read_sectors += 1.0;
                        from_dram = true;
                    }
                    l2.push(line, (bit, if is_store { bit } else { 0 }))
                }
            };
            if !is_store {
                let l = &mut levels[b][req as usize];
                *l = (*l).max(if from_dram { 2 } else { 1 });
            }
            if let Some((_, (_, dirty))) = evicted {
                s.dram_write_sectors += dirty.count_ones() as f64;
            }
        }
        if !any {
            break;
        }
    }
    for (_, (_, dirty)) in l2.iter() {
        s.dram_write_sectors += dirty.count_ones() as f64;
    }
    for l in levels.iter().flatten() {
        match l {
            0 => s.ld_req_l1 += 1.0,
            1 => s.ld_req_l2 += 1.0,
            _ => s.ld_req_dram += 1.0,
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{group_block, AddressMap, SiteTable};
    use blurpool_emu::TraceEvent;

    /// One block of 32 threads: each thread loads `reads` 4-byte words of a row (lane-
    /// contiguous, rows 128 B apart, read twice), then stores one word.
    fn trace(rows: u64) -> LaunchTrace {
        let base = 0x100000u64;
        let map = AddressMap::from_ranges(vec![
            (base, base + (1 << 20)),
            (base + (2 << 20), base + (3 << 20)),
        ]);
        let mut events = Vec::new();
        for t in 0..32u16 {
            for pass in 0..2u32 {
                for r in 0..rows {
                    let line = if pass == 0 { 1 } else { 2 }; // two sites
                    events.push(TraceEvent::synthetic(
                        base + 128 * r + 4 * t as u64,
                        line,
                        t,
                        4,
                        AccessKind::Load,
                    ));
                }
            }
            events.push(TraceEvent::synthetic(
                base + (2 << 20) + 4 * t as u64,
                3,
                t,
                4,
                AccessKind::Store,
            ));
        }
        let (mut sites, mut sectors, mut touched) = (SiteTable::default(), Vec::new(), vec![0; 2]);
        let reqs = group_block(&events, 32, &map, &mut sites, &mut sectors, &mut touched);
        LaunchTrace {
            blocks: vec![reqs],
            sectors,
            block_threads: 32,
            touched,
            ..LaunchTrace::default()
        }
    }

    fn cfg(l1: u64) -> CacheConfig {
        CacheConfig {
            l1_bytes_per_block: l1,
            l2_bytes: 1 << 20,
            lsu_clk_per_request: 2.0,
            l1_sectors_per_clk: 4.0,
            smem_wavefronts_per_clk: 1.0,
        }
    }

    #[test]
    fn a_second_pass_hits_l1_when_it_fits_and_l2_when_it_does_not() {
        // 16 rows × 128 B = 2 KiB: the second pass hits L1; DRAM reads each sector once.
        let s = simulate(&trace(16), &cfg(64 * 1024));
        assert_eq!((s.ld_requests, s.ld_sectors), (32.0, 128.0));
        assert_eq!(s.l1_hit_sectors, 64.0);
        assert_eq!((s.dram_read_sectors, s.dram_write_sectors), (64.0, 4.0));
        assert_eq!((s.ld_req_l1, s.ld_req_dram), (16.0, 16.0));
        assert_eq!(s.sector_efficiency(), 1.0);
        // An L1 of 4 lines cannot hold 16: the second pass misses L1, hits L2.
        let s = simulate(&trace(16), &cfg(512));
        assert_eq!(s.l1_hit_sectors, 0.0);
        assert_eq!(
            (s.l2_read_sectors, s.l2_hit_sectors, s.dram_read_sectors),
            (128.0, 64.0, 64.0)
        );
        assert_eq!((s.ld_req_l1, s.ld_req_l2, s.ld_req_dram), (0.0, 16.0, 16.0));
    }
}
