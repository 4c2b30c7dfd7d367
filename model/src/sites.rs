//! Where a launch's LSU cycles and requests come from: the trace's requests summed per source
//! site (`blurpool-model --workload … --sites`). A diagnostic for kernel work: the LSU bound
//! of [`crate::predict`] is the sum of these cycles over the SMs, so the site that holds most
//! of them is the one to change. Cycles per request use the same rule as
//! [`crate::cache::simulate`] (global: max(per request, lines, sectors / sectors per clock);
//! shared: max(per request, wavefronts / wavefronts per clock)).

use blurpool_emu::AccessKind;

use crate::hw::Gpu;
use crate::trace::{LaunchTrace, Space};

/// One site's requests in the whole launch (the sample's counts scaled).
#[derive(Debug, Clone, PartialEq)]
pub struct SiteFigures {
    pub site: String,
    /// "ld", "st", "ld.shared", "st.shared", "mma", "mark" (a path taken: bp_mark).
    pub kind: &'static str,
    pub requests: f64,
    pub lanes_per_request: f64,
    pub bytes_per_lane: f64,
    pub sectors_per_request: f64,
    pub lines_per_request: f64,
    pub wavefronts_per_request: f64,
    pub lsu_cycles: f64,
}

/// The launch's requests per site and kind, largest LSU share first.
pub fn per_site(t: &LaunchTrace, g: &Gpu) -> Vec<SiteFigures> {
    use std::collections::BTreeMap;
    // (site, kind) -> [requests, lanes, bytes, sectors, lines, wavefronts, cycles]
    let mut acc: BTreeMap<(u32, &'static str), [f64; 7]> = BTreeMap::new();
    for block in &t.blocks {
        for r in block {
            let kind = match (r.kind, r.space) {
                (AccessKind::Mark, _) => "mark",
                (AccessKind::Wgmma, _) => "wgmma",
                (AccessKind::Mma, _) | (_, Space::None) => "mma",
                (AccessKind::Load, Space::Shared) => "ld.shared",
                (_, Space::Shared) => "st.shared",
                (AccessKind::Load, Space::Global(_)) => "ld",
                (_, Space::Global(_)) => "st",
            };
            let cycles = match r.space {
                Space::None => 0.0,
                Space::Shared => g
                    .lsu_clk_per_request
                    .max(r.wavefronts as f64 / g.smem_wavefronts_per_clk),
                Space::Global(_) => g
                    .lsu_clk_per_request
                    .max(r.lines as f64)
                    .max(r.n_sectors as f64 / g.l1_sectors_per_clk),
            };
            let a = acc.entry((r.site, kind)).or_default();
            a[0] += 1.0;
            a[1] += r.lanes as f64;
            a[2] += r.lanes as f64 * r.size as f64;
            a[3] += r.n_sectors as f64;
            a[4] += r.lines as f64;
            a[5] += r.wavefronts as f64;
            a[6] += cycles;
        }
    }
    let k = t.scale();
    let per = |x: f64, n: f64| if n > 0.0 { x / n } else { 0.0 };
    let mut out: Vec<SiteFigures> = acc
        .into_iter()
        .map(|((site, kind), a)| SiteFigures {
            site: t
                .sites
                .get(site as usize)
                .map_or_else(|| format!("site {site}"), |s| s.name()),
            kind,
            requests: a[0] * k,
            lanes_per_request: per(a[1], a[0]),
            bytes_per_lane: per(a[2], a[1]),
            sectors_per_request: per(a[3], a[0]),
            lines_per_request: per(a[4], a[0]),
            wavefronts_per_request: per(a[5], a[0]),
            lsu_cycles: a[6] * k,
        })
        .collect();
    out.sort_by(|a, b| b.lsu_cycles.total_cmp(&a.lsu_cycles));
    out
}

/// The per-site table of one launch as Markdown, with each site's share of the LSU cycles and
/// its LSU time on `g` (µs, over `sms` SMs).
pub fn markdown(symbol: &str, rows: &[SiteFigures], g: &Gpu, sms: f64) -> String {
    let total: f64 = rows.iter().map(|r| r.lsu_cycles).sum();
    let mut s = format!(
        "`{symbol}` per site ({}: LSU µs = cycles / ({sms} SMs × clock))\n\n\
         | site | kind | requests | lanes/req | B/lane | sectors/req | lines/req | wavefronts/req | LSU µs | share |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
        g.name
    );
    for r in rows {
        s += &format!(
            "| {} | {} | {:.3e} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.0}% |\n",
            r.site,
            r.kind,
            r.requests,
            r.lanes_per_request,
            r.bytes_per_lane,
            r.sectors_per_request,
            r.lines_per_request,
            r.wavefronts_per_request,
            1e6 * r.lsu_cycles / (sms * g.clock_hz),
            if total > 0.0 {
                100.0 * r.lsu_cycles / total
            } else {
                0.0
            }
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{simulate, CacheConfig};
    use crate::hw::H100;
    use crate::trace::{group_block, AddressMap, SiteTable};
    use blurpool_emu::TraceEvent;

    /// 32 threads: a lane-contiguous 4-byte load (site 1), a 4-byte load at a 128-byte stride
    /// across lanes (site 2: 32 lines), and a contiguous 2-byte store (site 3).
    fn trace() -> LaunchTrace {
        let base = 0x100000u64;
        let map = AddressMap::from_ranges(vec![
            (base, base + (1 << 20)),
            (base + (2 << 20), base + (3 << 20)),
        ]);
        let mut events = Vec::new();
        for t in 0..32u16 {
            let l = t as u64;
            events.push(TraceEvent::synthetic(
                base + 4 * l,
                1,
                t,
                4,
                AccessKind::Load,
            ));
            events.push(TraceEvent::synthetic(
                base + 4096 + 128 * l,
                2,
                t,
                4,
                AccessKind::Load,
            ));
            let y = base + (2 << 20) + 2 * l;
            events.push(TraceEvent::synthetic(y, 3, t, 2, AccessKind::Store));
        }
        let (mut sites, mut sectors, mut touched) = (SiteTable::default(), Vec::new(), vec![0; 2]);
        let reqs = group_block(&events, 32, &map, &mut sites, &mut sectors, &mut touched);
        LaunchTrace {
            blocks: vec![reqs],
            sectors,
            block_threads: 32,
            touched,
            sites: sites.into_sites(),
            run: blurpool_emu::TraceRun {
                items_total: 32,
                items_sampled: 32,
                ..Default::default()
            },
            ..LaunchTrace::default()
        }
    }

    #[test]
    fn sites_split_the_launch_lsu_cycles_and_name_the_strided_load_first() {
        let t = trace();
        let rows = per_site(&t, &H100);
        assert_eq!(rows.len(), 3);
        // The strided load: 32 lines, 32 sectors: 32 cycles; the contiguous load: 1 line,
        // 4 sectors: the 2-cycle floor; the store: 1 line, 2 sectors: 2 cycles.
        assert_eq!((rows[0].kind, rows[0].lsu_cycles), ("ld", 32.0));
        assert_eq!(rows[0].lines_per_request, 32.0);
        assert_eq!(rows[0].site, t.sites[1].name());
        let total: f64 = rows.iter().map(|r| r.lsu_cycles).sum();
        assert_eq!(total, 36.0);
        let cfg = CacheConfig {
            l1_bytes_per_block: 64 * 1024,
            l2_bytes: 1 << 20,
            lsu_clk_per_request: H100.lsu_clk_per_request,
            l1_sectors_per_clk: H100.l1_sectors_per_clk,
            smem_wavefronts_per_clk: H100.smem_wavefronts_per_clk,
        };
        assert_eq!(simulate(&t, &cfg).lsu_cycles, total);
        let md = markdown("k", &rows, &H100, 132.0);
        assert_eq!(md.lines().count(), 4 + rows.len(), "{md}");
        assert!(
            md.contains("| ld | 1.000e0 | 32.0 | 4.0 | 32.0 | 32.0 |"),
            "{md}"
        );
    }
}
