//! The suite's table: one row per workload × path (and per launch of multi-launch paths), in
//! Markdown for people and JSON for tools.

use std::fmt::Write as _;

use crate::suite::WorkloadModel;

fn us(s: f64) -> String {
    format!("{:.1}", s * 1e6)
}

/// The Markdown table of `models` (the prediction columns for every GPU in `hw::ALL`).
pub fn markdown(models: &[WorkloadModel]) -> String {
    let mut s = String::new();
    let gpus: Vec<&str> = crate::hw::ALL.iter().map(|g| g.name).collect();
    writeln!(
        s,
        "| workload | path | kernel | regs | warps/SM | instr/out | LDG widths | loads in flight | sectors/req | B/lane | full warps | L1 hit | L2↔L1 / min | DRAM / min | smem wf/req | {} |",
        gpus.iter()
            .map(|g| format!("{g} µs | {g} % copy | {g} bound"))
            .collect::<Vec<_>>()
            .join(" | ")
    )
    .unwrap();
    let cols = 15 + 3 * gpus.len();
    writeln!(s, "|{}", "---|".repeat(cols)).unwrap();
    for w in models {
        let label = format!("{} {} {} {}", w.op, w.shape, w.dtype, w.layout);
        for p in &w.paths {
            for (li, l) in p.launches.iter().enumerate() {
                let pr = &l.predictions[0];
                let m = &pr.mem;
                let (dr, dw) = m.dram_bytes();
                let min = w.min_bytes as f64;
                let per_out = l.code.warp_instructions / w.outputs.max(1) as f64;
                let first = li == 0;
                let mut row = format!(
                    "| {} | {} | `{}` | {} | {} | {:.1} | {} | {:.1} (max {}) | {:.2} | {:.2} | {:.0}% | {:.0}% | {:.2} | {:.2} | {:.2} |",
                    if first { label.as_str() } else { "" },
                    if first { p.name.as_str() } else { "" },
                    l.symbol,
                    l.code.registers,
                    pr.occupancy.warps_per_sm,
                    per_out,
                    l.code.load_widths,
                    l.code.loads_in_flight,
                    l.code.loads_in_flight_max,
                    m.sectors_per_load(),
                    m.bytes_per_lane(),
                    100.0 * m.full_warp_share(),
                    100.0 * m.l1_hit_rate(),
                    m.l2_bytes() / min,
                    (dr + dw) / min,
                    m.wavefronts_per_shared(),
                );
                for (gi, _) in gpus.iter().enumerate() {
                    let lp = &l.predictions[gi];
                    if p.launches.len() == 1 {
                        let t = &p.totals[gi];
                        write!(
                            row,
                            " {} | {:.0}% | {} |",
                            us(t.time),
                            t.pct_of_copy,
                            t.bound
                        )
                        .unwrap();
                    } else {
                        write!(row, " {} | | {} |", us(lp.time), lp.bound).unwrap();
                    }
                }
                writeln!(s, "{row}").unwrap();
            }
            if p.launches.len() > 1 {
                let mut row = format!("| | {} total | | | | | | | | | | | | | |", p.name);
                for t in &p.totals {
                    write!(
                        row,
                        " {} | {:.0}% | {} |",
                        us(t.time),
                        t.pct_of_copy,
                        t.bound
                    )
                    .unwrap();
                }
                writeln!(s, "{row}").unwrap();
            }
        }
    }
    s
}

/// The bounds of every launch on every GPU, in µs (the table's reasons).
pub fn bounds_markdown(models: &[WorkloadModel]) -> String {
    let mut s = String::new();
    writeln!(
        s,
        "| workload | path | kernel | GPU | DRAM | L2 | issue | LSU | latency | tensor | launch | predicted | bound | bytes in flight/SM |"
    )
    .unwrap();
    writeln!(s, "|{}", "---|".repeat(14)).unwrap();
    for w in models {
        for p in &w.paths {
            for l in &p.launches {
                for pr in &l.predictions {
                    writeln!(
                        s,
                        "| {} {} {} {} | {} | `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} |",
                        w.op, w.shape, w.dtype, w.layout, p.name, l.symbol, pr.gpu,
                        us(pr.t_dram), us(pr.t_l2), us(pr.t_issue), us(pr.t_lsu), us(pr.t_latency),
                        us(pr.t_tensor), us(pr.t_launch), us(pr.time), pr.bound, pr.bytes_in_flight_per_sm
                    )
                    .unwrap();
                }
            }
        }
    }
    s
}

/// Everything, as JSON.
pub fn json(models: &[WorkloadModel]) -> Result<String, String> {
    serde_json::to_string_pretty(&serde_json::json!({
        "machines": crate::hw::ALL,
        "workloads": models,
    }))
    .map_err(|e| e.to_string())
}
