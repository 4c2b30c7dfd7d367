//! The kernels' sm_90 machine code, read with nvdisasm (instructions, control words, line
//! tables with inlining) and cuobjdump (registers, shared memory, stack), from the cubins
//! model/build.rs compiles with `-lineinfo`.
//!
//! What is derived here:
//! * per instruction: its class (global / shared load or store, mma, …), access width, and the
//!   source chain (innermost line first, then the lines it was inlined at), which names the
//!   emulator's access site it belongs to;
//! * loads in flight: walking the code in address order with the scoreboards of the control
//!   words (a load sets a write barrier; an instruction that waits on that barrier, or a
//!   `DEPBAR.LE` on it, retires it), each global load is credited with the number of global
//!   loads outstanding when it is retired: the independent loads issued before the first use;
//! * basic blocks and loops (back edges), for the dynamic instruction estimate of
//!   [`Function::dynamic_instructions`].

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where nvdisasm and cuobjdump are: `BLURPOOL_NVDISASM` / `BLURPOOL_CUOBJDUMP`, next to
/// `$NVCC`, `<repo>/.tools/sass/nvidia/cu13/bin` (scripts/install-sass-tools.sh), or PATH.
pub fn tool(name: &str) -> PathBuf {
    let var = format!("BLURPOOL_{}", name.to_ascii_uppercase());
    if let Some(p) = std::env::var_os(&var).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let mut dirs = Vec::new();
    if let Some(nvcc) = std::env::var_os("NVCC") {
        if let Some(d) = Path::new(&nvcc).parent() {
            dirs.push(d.to_path_buf());
        }
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/sass/nvidia/cu13/bin"));
    for d in dirs {
        if d.join(name).is_file() {
            return d.join(name);
        }
    }
    PathBuf::from(name)
}

/// The scheduling control of a Volta+ instruction (bits 105–125 of the 128-bit word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Control {
    pub stall: u8,
    /// The barrier this instruction sets when its result is written (variable-latency ops).
    pub write_barrier: Option<u8>,
    pub read_barrier: Option<u8>,
    /// Barriers it waits on before issuing.
    pub wait_mask: u8,
}

impl Control {
    /// From the high 64-bit word of the encoding.
    pub fn from_high_word(hi: u64) -> Control {
        let c = hi >> 41;
        let bar = |v: u64| if v == 7 { None } else { Some(v as u8) };
        Control {
            stall: (c & 0xf) as u8,
            write_barrier: bar((c >> 5) & 7),
            read_barrier: bar((c >> 8) & 7),
            wait_mask: ((c >> 11) & 0x3f) as u8,
        }
    }
}

/// What an instruction does, as far as the model cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    GlobalLoad,
    GlobalStore,
    SharedLoad,
    SharedStore,
    LocalAccess,
    Mma,
    Branch,
    Exit,
    Other,
}

impl Class {
    fn of(opcode: &str) -> Class {
        let base = opcode.split('.').next().unwrap_or("");
        match base {
            // LDGSTS: cp.async, a global load whose data goes to shared memory (the emulator
            // traces its global side).
            "LDG" | "LD" | "LDGSTS" => Class::GlobalLoad,
            "STG" | "ST" | "RED" | "ATOM" | "ATOMG" => Class::GlobalStore,
            // SHFL: a warp shuffle, which the emulator traces as a shared-memory load of one
            // wavefront (emu.h): it runs in the same MIO pipe.
            "LDS" | "LDSM" | "SHFL" => Class::SharedLoad,
            "STS" | "ATOMS" => Class::SharedStore,
            "LDL" | "STL" => Class::LocalAccess,
            "HMMA" | "IMMA" | "HGMMA" | "QGMMA" => Class::Mma,
            "BRA" | "BRX" | "JMP" | "JMX" => Class::Branch,
            "EXIT" | "RET" => Class::Exit,
            _ => Class::Other,
        }
    }
    /// A memory access or mma the emulator records (so it has an access site).
    pub fn is_traced(self) -> bool {
        matches!(
            self,
            Class::GlobalLoad
                | Class::GlobalStore
                | Class::SharedLoad
                | Class::SharedStore
                | Class::Mma
        )
    }
}

/// One SASS instruction.
#[derive(Debug, Clone)]
pub struct Instr {
    pub offset: u32,
    pub predicate: Option<String>,
    pub opcode: String,
    pub operands: Vec<String>,
    pub control: Control,
    pub class: Class,
    /// Bytes per lane of a memory access.
    pub width: u8,
    /// (file name, line) from the innermost to the outermost inlining level.
    pub chain: Vec<(String, u32)>,
    /// A branch's target label.
    pub target: Option<String>,
}

/// Resources of a function (cuobjdump -res-usage).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub registers: u32,
    pub shared: u32,
    pub stack: u32,
    pub local: u32,
}

/// One kernel's code.
#[derive(Debug, Clone, Default)]
pub struct Function {
    pub name: String,
    pub instrs: Vec<Instr>,
    /// Label → index of the instruction it precedes.
    pub labels: HashMap<String, usize>,
    pub resources: Resources,
}

/// Every function of the cubins read.
#[derive(Debug, Clone, Default)]
pub struct Sass {
    pub functions: HashMap<String, Function>,
}

fn width_of(opcode: &str) -> u8 {
    let mods: Vec<&str> = opcode.split('.').skip(1).collect();
    if mods.contains(&"128") {
        16
    } else if mods.contains(&"64") {
        8
    } else if mods.iter().any(|m| *m == "U16" || *m == "S16") {
        2
    } else if mods.iter().any(|m| *m == "U8" || *m == "S8") {
        1
    } else {
        4
    }
}

fn base_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// Parses `//## File "a", line 1 inlined at "b", line 2` into its first (file, line).
fn parse_file_line(s: &str) -> Option<(String, u32)> {
    let rest = s.trim_start().strip_prefix("//## File \"")?;
    let (file, rest) = rest.split_once('"')?;
    let rest = rest.trim_start().strip_prefix(", line ")?;
    let line: u32 = rest
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((base_name(file), line))
}

/// Parses nvdisasm `-gi -c -hex` output.
pub fn parse_nvdisasm(text: &str) -> Vec<Function> {
    let mut out: Vec<Function> = Vec::new();
    let mut chain: Vec<(String, u32)> = Vec::new();
    let mut chain_open = false; // the last lines were //## File lines (a new chain is being read)
    let mut pending: Option<(Instr, bool)> = None; // waiting for its high word
    let lines: Vec<&str> = text.lines().collect();
    for raw in lines {
        let line = raw.trim_end();
        if let Some(rest) = line.strip_prefix("//--------------------- .text.") {
            let name = rest.split_whitespace().next().unwrap_or("").to_string();
            out.push(Function {
                name,
                ..Function::default()
            });
            chain.clear();
            continue;
        }
        let Some(f) = out.last_mut() else { continue };
        let t = line.trim_start();
        if t.starts_with("//## File") {
            if !chain_open {
                chain.clear();
                chain_open = true;
            }
            if let Some(fl) = parse_file_line(t) {
                chain.push(fl);
            }
            continue;
        }
        chain_open = false;
        if let Some(label) = t.strip_suffix(':') {
            if label.starts_with(".L_x_") {
                f.labels.insert(label.to_string(), f.instrs.len());
            }
            continue;
        }
        if let Some((mut ins, _)) = pending.take() {
            // the encoding's high word: /* 0x................ */
            if let Some(hex) = t.strip_prefix("/* 0x").and_then(|r| r.strip_suffix(" */")) {
                if let Ok(hi) = u64::from_str_radix(hex, 16) {
                    ins.control = Control::from_high_word(hi);
                }
            }
            f.instrs.push(ins);
            continue;
        }
        if let Some(rest) = t.strip_prefix("/*") {
            let Some((off, rest)) = rest.split_once("*/") else {
                continue;
            };
            let Ok(offset) = u32::from_str_radix(off.trim(), 16) else {
                continue;
            };
            let Some((body, _)) = rest.split_once(';') else {
                continue;
            };
            let mut toks = body.split_whitespace();
            let mut first = toks.next().unwrap_or("");
            let predicate = if first.starts_with('@') {
                let p = first.to_string();
                first = toks.next().unwrap_or("");
                Some(p)
            } else {
                None
            };
            let opcode = first.to_string();
            let rest_ops: String = toks.collect::<Vec<_>>().join(" ");
            let operands: Vec<String> = rest_ops
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            let target = operands.iter().find_map(|o| {
                let i = o.find(".L_x_")?;
                let l: String = o[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                    .collect();
                Some(l)
            });
            let class = Class::of(&opcode);
            pending = Some((
                Instr {
                    offset,
                    predicate,
                    width: width_of(&opcode),
                    opcode,
                    operands,
                    control: Control::default(),
                    class,
                    chain: chain.clone(),
                    target,
                },
                true,
            ));
        }
    }
    out
}

/// Parses `cuobjdump -res-usage` output: function → resources.
pub fn parse_res_usage(text: &str) -> HashMap<String, Resources> {
    let mut out = HashMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t
            .strip_prefix("Function ")
            .and_then(|r| r.strip_suffix(':'))
        {
            current = Some(name.to_string());
            continue;
        }
        if let (Some(name), true) = (&current, t.starts_with("REG:")) {
            let field = |key: &str| -> u32 {
                t.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(key))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            out.insert(
                name.clone(),
                Resources {
                    registers: field("REG:"),
                    shared: field("SHARED:"),
                    stack: field("STACK:"),
                    local: field("LOCAL:"),
                },
            );
            current = None;
        }
    }
    out
}

fn run(tool_name: &str, args: &[&std::ffi::OsStr]) -> Result<String, String> {
    let path = tool(tool_name);
    let out = Command::new(&path).args(args).output().map_err(|e| {
        format!(
            "could not run {} ({e}); install it with scripts/install-sass-tools.sh or set \
             BLURPOOL_{}",
            path.display(),
            tool_name.to_ascii_uppercase()
        )
    })?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("{}: {e}", path.display()))
}

impl Sass {
    /// Reads `cubins`.
    pub fn read(cubins: &[PathBuf]) -> Result<Sass, String> {
        let mut s = Sass::default();
        for c in cubins {
            let text = run(
                "nvdisasm",
                &[
                    "-gi".as_ref(),
                    "-c".as_ref(),
                    "-hex".as_ref(),
                    c.as_os_str(),
                ],
            )?;
            let res = parse_res_usage(&run("cuobjdump", &["-res-usage".as_ref(), c.as_os_str()])?);
            for mut f in parse_nvdisasm(&text) {
                f.resources = res.get(&f.name).copied().unwrap_or_default();
                s.functions.insert(f.name.clone(), f);
            }
        }
        Ok(s)
    }

    /// The cubins model/build.rs compiled: the kernels', then the gates' serialised variant.
    pub fn built_cubins() -> Result<Vec<PathBuf>, String> {
        let list = env!("BLURPOOL_MODEL_CUBINS");
        if list.is_empty() {
            return Err(
                "blurpool-model was built without nvcc, so it has no SASS to read \
                        (NVCC=$(scripts/install-nvcc.sh | tail -1) cargo build -p blurpool-model)"
                    .into(),
            );
        }
        Ok(list.split(';').map(PathBuf::from).collect())
    }

    /// The kernel sources' `bp_mark();` lines (file name, line), from model/build.rs.
    pub fn mark_lines() -> HashSet<(String, u32)> {
        env!("BLURPOOL_MODEL_MARKS")
            .split(';')
            .filter_map(|m| {
                let (f, l) = m.rsplit_once(':')?;
                Some((f.to_string(), l.parse().ok()?))
            })
            .collect()
    }

    /// The kernels' own cubins (not the variants).
    pub fn kernels() -> Result<Sass, String> {
        let cubins: Vec<PathBuf> = Self::built_cubins()?
            .into_iter()
            .filter(|p| !p.to_string_lossy().contains("gate_"))
            .collect();
        Sass::read(&cubins)
    }

    /// The gates' serialised variant of the pooling family.
    pub fn serialised_variant() -> Result<Sass, String> {
        let cubins: Vec<PathBuf> = Self::built_cubins()?
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("gate_serialised"))
            .collect();
        Sass::read(&cubins)
    }

    pub fn function(&self, name: &str) -> Result<&Function, String> {
        self.functions
            .get(name)
            .ok_or_else(|| format!("{name} is not in the sm_90 SASS"))
    }
}

impl Function {
    /// For each global load (instruction index), the most global loads outstanding at any wait
    /// on a global load while it was in flight (the warp's memory stalls with it outstanding:
    /// everything outstanding at a stall overlaps in that latency window), walking the code in
    /// address order; loads never waited on before the end are credited with what is
    /// outstanding there. (Until 2026-12-06 each load was credited only at its own retirement,
    /// so a batch of 4 loads consumed one by one counted 4, 3, 2, 1 although all 4 were in
    /// flight together: the latency bound charged a batch by the order of its uses. The count
    /// at its own retirement is one of the stalls, so no load's figure fell.)
    pub fn loads_in_flight(&self) -> HashMap<usize, u32> {
        // The pseudo scoreboard of the cp.async copies (LDGSTS), outside the 6 real ones.
        const CP_ASYNC_BARRIER: u8 = 0xff;
        let mut out = HashMap::new();
        let mut outstanding: Vec<(usize, u8)> = Vec::new(); // (instr, barrier)
        let retire = |outstanding: &mut Vec<(usize, u8)>,
                      out: &mut HashMap<usize, u32>,
                      pick: &dyn Fn(usize, u8) -> bool| {
            let n = outstanding.len() as u32;
            if !outstanding
                .iter()
                .enumerate()
                .any(|(k, &(_, b))| pick(k, b))
            {
                return; // no global load waited on here: not a memory stall
            }
            let mut keep = Vec::with_capacity(outstanding.len());
            for (k, &(i, b)) in outstanding.iter().enumerate() {
                let e = out.entry(i).or_insert(n); // a memory stall while it is in flight
                *e = (*e).max(n);
                if !pick(k, b) {
                    keep.push((i, b));
                }
            }
            *outstanding = keep;
        };
        for (idx, ins) in self.instrs.iter().enumerate() {
            let mask = ins.control.wait_mask;
            if mask != 0 {
                retire(&mut outstanding, &mut out, &|_, b| {
                    b < 8 && mask & (1 << b) != 0
                });
            }
            if ins.opcode.starts_with("DEPBAR") {
                retire(&mut outstanding, &mut out, &|_, b| b == CP_ASYNC_BARRIER);
                // DEPBAR.LE SBk, n: wait until at most n operations on barrier k are pending.
                let sb = ins
                    .operands
                    .first()
                    .and_then(|o| o.strip_prefix("SB"))
                    .and_then(|v| v.parse::<u8>().ok());
                let n = ins
                    .operands
                    .get(1)
                    .and_then(|o| u32::from_str_radix(o.trim_start_matches("0x"), 16).ok())
                    .unwrap_or(0) as usize;
                if let Some(sb) = sb {
                    let on_sb: Vec<usize> = outstanding
                        .iter()
                        .enumerate()
                        .filter(|(_, (_, b))| *b == sb)
                        .map(|(k, _)| k)
                        .collect();
                    let drop = on_sb.len().saturating_sub(n);
                    let first: Vec<usize> = on_sb.into_iter().take(drop).collect();
                    retire(&mut outstanding, &mut out, &|k, _| first.contains(&k));
                }
            }
            if ins.opcode.starts_with("LDGSTS") {
                // cp.async: no register waits for it; it stays in flight until the next
                // DEPBAR (cp.async.wait_*), which retires every copy issued before it.
                outstanding.push((idx, CP_ASYNC_BARRIER));
                continue;
            }
            if ins.class == Class::GlobalLoad {
                if let Some(b) = ins.control.write_barrier {
                    outstanding.push((idx, b));
                } else {
                    out.insert(idx, 1);
                }
            }
        }
        let n = outstanding.len() as u32;
        for (i, _) in outstanding {
            out.entry(i).or_insert(n);
        }
        out
    }

    /// Basic blocks as [start, end) instruction ranges: a label starts one, a branch or exit
    /// ends one.
    pub fn blocks(&self) -> Vec<(usize, usize)> {
        let mut starts: Vec<usize> = self.labels.values().copied().collect();
        starts.push(0);
        for (i, ins) in self.instrs.iter().enumerate() {
            if matches!(ins.class, Class::Branch | Class::Exit) {
                starts.push(i + 1);
            }
        }
        starts.retain(|&s| s < self.instrs.len());
        starts.sort_unstable();
        starts.dedup();
        starts
            .iter()
            .enumerate()
            .map(|(k, &s)| (s, starts.get(k + 1).copied().unwrap_or(self.instrs.len())))
            .collect()
    }

    /// Classes of `blocks` (from [`Function::blocks`]) that run equally often: a block whose
    /// only successor has it as its only predecessor (straight-line code split by a label), and
    /// a block holding a `BSSY` with the block at its reconvergence label (the join after an
    /// if/else or a divergent loop runs once per run of the code before it). A block starting
    /// at a label no branch names may be an indirect branch's (`BRX`, a switch's jump table)
    /// target: its predecessors are unknown and it joins no class through them. Returns each
    /// block's class representative.
    pub fn equivalent_blocks(&self, blocks: &[(usize, usize)]) -> Vec<usize> {
        let n = blocks.len();
        let block_at: HashMap<usize, usize> = blocks
            .iter()
            .enumerate()
            .map(|(k, &(s, _))| (s, k))
            .collect();
        let label_block = |l: &str| self.labels.get(l).and_then(|i| block_at.get(i).copied());
        let mut named: std::collections::HashSet<usize> = Default::default();
        for ins in &self.instrs {
            if let Some(b) = ins.target.as_deref().and_then(label_block) {
                named.insert(b);
            }
        }
        let label_starts: std::collections::HashSet<usize> =
            self.labels.values().copied().collect();
        let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut opaque_out = vec![false; n];
        for (k, &(_, e)) in blocks.iter().enumerate() {
            let last = &self.instrs[e - 1];
            let predicated = last.predicate.as_deref().is_some_and(|p| p != "@PT");
            let falls = match last.class {
                Class::Branch => {
                    if last.opcode.starts_with("BRA") {
                        match last.target.as_deref().and_then(label_block) {
                            Some(t) => succs[k].push(t),
                            None => opaque_out[k] = true,
                        }
                    } else {
                        opaque_out[k] = true; // BRX, JMX, JMP: targets unknown
                    }
                    predicated
                }
                Class::Exit => predicated,
                _ => true,
            };
            if falls && k + 1 < n {
                succs[k].push(k + 1);
            }
        }
        let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (k, ss) in succs.iter().enumerate() {
            for &s in ss {
                preds[s].push(k);
            }
        }
        let has_indirect = opaque_out.iter().any(|&o| o);
        let opaque_in: Vec<bool> = (0..n)
            .map(|k| has_indirect && label_starts.contains(&blocks[k].0) && !named.contains(&k))
            .collect();
        let mut parent: Vec<usize> = (0..n).collect();
        fn find(p: &mut [usize], mut x: usize) -> usize {
            while p[x] != x {
                p[x] = p[p[x]];
                x = p[x];
            }
            x
        }
        let mut union = |a: usize, b: usize| {
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            if ra != rb {
                parent[ra.max(rb)] = ra.min(rb);
            }
        };
        for k in 0..n {
            if !opaque_out[k] && succs[k].len() == 1 {
                let s = succs[k][0];
                if s != k && !opaque_in[s] && preds[s].len() == 1 {
                    union(k, s);
                }
            }
            for i in blocks[k].0..blocks[k].1 {
                let ins = &self.instrs[i];
                if ins.opcode.starts_with("BSSY") {
                    if let Some(j) = ins.target.as_deref().and_then(label_block) {
                        union(k, j);
                    }
                }
            }
        }
        (0..n).map(|k| find(&mut parent, k)).collect()
    }

    /// Loops as [head, tail] instruction ranges: a branch at `tail` to a label at `head` ≤ tail.
    pub fn loops(&self) -> Vec<(usize, usize)> {
        let mut v: Vec<(usize, usize)> = self
            .instrs
            .iter()
            .enumerate()
            .filter(|(_, ins)| ins.class == Class::Branch)
            .filter_map(|(i, ins)| {
                let h = *self.labels.get(ins.target.as_ref()?)?;
                (h <= i).then_some((h, i))
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The access site an instruction belongs to: the innermost entry of its chain that is one
    /// of `sites` (file name, line).
    pub fn site_of(&self, ins: &Instr, sites: &HashMap<(String, u32), usize>) -> Option<usize> {
        ins.chain.iter().find_map(|k| sites.get(k).copied())
    }

    /// Estimated dynamic warp instructions of the sample, from the trace's dynamic warp requests
    /// per site (`site_requests[site]`; `sites` maps (file, line) to the index):
    /// * a traced instruction (memory access or mma) of site s runs requests(s) / (the number of
    ///   the function's instructions of site s) times; one whose chain names no site of the
    ///   trace never ran in the sample (every access goes through the hooks): 0 times;
    /// * a basic block with traced instructions runs as often as their mean;
    /// * an instruction whose chain passes through a line of `mark_lines` that the trace never
    ///   reached runs 0 times (the path below an untaken mark: e.g. a walk's copy for another
    ///   chunk width), and does not share its site's requests with the copies that ran;
    /// * a block without any, whose instructions' chains name a line of `mark_lines` (a
    ///   `bp_mark();` of the sources, placed on a code path without accesses such as a switch's
    ///   case), runs as often as the trace's marks there (the most of those it names), never
    ///   where the trace has none (a case no lane took);
    /// * any other block takes the largest count of the blocks with traced instructions (or
    ///   marks) in the same innermost loop, else the enclosing loop's, and a block in no loop
    ///   runs once per warp (`warps`). (Until 2026-12-06 it took the nearest such block's: a
    ///   never-run access beside it, such as an untaken fallback's, then gave a loop's
    ///   arithmetic 0 runs; the largest errs the other way, on the side of more issue.)
    ///
    /// Unmarked code without memory accesses (e.g. the padding searches of the tensor-core
    /// tile) is counted as often as its enclosing code: the estimate's blind spot, which a
    /// mark closes where a kernel has one.
    /// Returns (instructions, per-instruction execution counts).
    pub fn dynamic_instructions(
        &self,
        sites: &HashMap<(String, u32), usize>,
        site_requests: &[f64],
        mark_lines: &HashSet<(String, u32)>,
        warps: f64,
    ) -> (f64, Vec<f64>) {
        let n = self.instrs.len();
        let mut per_site = vec![0usize; site_requests.len()];
        // An instruction inlined through a mark's line that no lane reached never ran: a copy
        // of shared code (e.g. a walk instantiated for another chunk width) that this launch
        // did not take. It counts 0, and its accesses do not share its sites' requests.
        let dead: Vec<bool> = self
            .instrs
            .iter()
            .map(|i| {
                i.chain
                    .iter()
                    .any(|k| mark_lines.contains(k) && !sites.contains_key(k))
            })
            .collect();
        let site: Vec<Option<usize>> = self
            .instrs
            .iter()
            .enumerate()
            .map(|(k, i)| {
                if i.class.is_traced() && !dead[k] {
                    self.site_of(i, sites)
                } else {
                    None
                }
            })
            .collect();
        for s in site.iter().flatten() {
            per_site[*s] += 1;
        }
        let blocks = self.blocks();
        let loops = self.loops();
        // innermost loop of an instruction index
        let innermost = |i: usize| -> Option<usize> {
            loops
                .iter()
                .enumerate()
                .filter(|(_, (h, t))| *h <= i && i <= *t)
                .min_by_key(|(_, (h, t))| t - h)
                .map(|(k, _)| k)
        };
        let mut freq: Vec<Option<f64>> = blocks
            .iter()
            .map(|&(s, e)| {
                if (s..e).all(|i| dead[i]) {
                    return Some(0.0);
                }
                let traced: Vec<f64> = (s..e)
                    .filter(|&i| self.instrs[i].class.is_traced() && !dead[i])
                    .map(|i| match site[i] {
                        Some(st) => site_requests[st] / per_site[st].max(1) as f64,
                        None => 0.0,
                    })
                    .collect();
                if !traced.is_empty() {
                    return Some(traced.iter().sum::<f64>() / traced.len() as f64);
                }
                // A marked path: its marks' count (0 where the trace has none).
                (s..e)
                    .filter_map(|i| {
                        self.instrs[i]
                            .chain
                            .iter()
                            .find(|k| mark_lines.contains(*k))
                    })
                    .map(|k| sites.get(k).map_or(0.0, |&st| site_requests[st]))
                    .reduce(f64::max)
            })
            .collect();
        // Blocks that run equally often (control equivalence) share what is known of them.
        let classes = self.equivalent_blocks(&blocks);
        let mut best: HashMap<usize, f64> = HashMap::new();
        for (b, f) in freq.iter().enumerate() {
            if let Some(f) = f {
                let e = best.entry(classes[b]).or_insert(*f);
                *e = e.max(*f);
            }
        }
        for (b, f) in freq.iter_mut().enumerate() {
            if f.is_none() {
                *f = best.get(&classes[b]).copied();
            }
        }
        let block_loop: Vec<Option<usize>> = blocks.iter().map(|&(s, _)| innermost(s)).collect();
        let parent = |l: usize| -> Option<usize> {
            let (h, t) = loops[l];
            loops
                .iter()
                .enumerate()
                .filter(|(k, (hh, tt))| *k != l && *hh <= h && t <= *tt && (tt - hh) > (t - h))
                .min_by_key(|(_, (hh, tt))| tt - hh)
                .map(|(k, _)| k)
        };
        let known = freq.clone();
        for b in 0..blocks.len() {
            if freq[b].is_some() {
                continue;
            }
            let mut level = block_loop[b];
            let value = loop {
                let Some(l) = level else { break warps };
                // The loop's body runs at least as often as its most frequent traced block.
                let most = (0..blocks.len())
                    .filter(|&k| block_loop[k] == Some(l))
                    .filter_map(|k| known[k])
                    .reduce(f64::max);
                if let Some(v) = most {
                    break v;
                }
                level = parent(l);
            };
            freq[b] = Some(value);
        }
        let mut per_instr = vec![0.0; n];
        let mut total = 0.0;
        for (k, &(s, e)) in blocks.iter().enumerate() {
            let f = freq[k].unwrap_or(0.0);
            for i in s..e {
                if !dead[i] {
                    per_instr[i] = f;
                    total += f;
                }
            }
        }
        (total, per_instr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"//--------------------- .text.k --------------------------
	.section	.text.k,"ax",@progbits
k:
.text.k:
        /*0000*/                   LDC R1, c[0x0][0x28] ;                                 /* 0x00000a00ff017b82 */
                                                                                          /* 0x000fe20000000800 */
	//## File "/x/kernels/common.cuh", line 37 inlined at "/x/kernels/pool_forward.cu", line 98
	//## File "/x/kernels/pool_forward.cu", line 98
        /*0010*/                   LDG.E.U16.CONSTANT R4, desc[UR4][R2.64] ;              /* 0x0000000402047981 */
                                                                                          /* 0x000ea2000c1e9500 */
        /*0020*/                   LDG.E.U16.CONSTANT R5, desc[UR4][R2.64+0x2] ;          /* 0x0000020402057981 */
                                                                                          /* 0x000ea2000c1e9500 */
.L_x_1:
	//## File "/x/kernels/strip.cuh", line 50
        /*0030*/                   HADD2.F32 R6, -RZ, R4.H0_H0 ;                          /* 0x20000004ff067230 */
                                                                                          /* 0x004fe20000004100 */
        /*0040*/              @!P0 BRA `(.L_x_1) ;                                        /* 0x000000000000894d */
                                                                                          /* 0x000fea0003800000 */
        /*0050*/                   EXIT ;                                                 /* 0x000000000000794d */
                                                                                          /* 0x000fea0003800000 */
"#;

    #[test]
    fn nvdisasm_output_is_parsed() {
        let f = &parse_nvdisasm(SAMPLE)[0];
        assert_eq!(f.name, "k");
        assert_eq!(f.instrs.len(), 6);
        let ld = &f.instrs[1];
        assert_eq!((ld.class, ld.width), (Class::GlobalLoad, 2));
        assert_eq!(
            ld.chain,
            vec![("common.cuh".into(), 37), ("pool_forward.cu".into(), 98)]
        );
        assert_eq!(ld.control.write_barrier, Some(2));
        // the HADD2 waits on barrier 2 (0x004f... : wait mask 0b000100)
        assert_eq!(f.instrs[3].control.wait_mask, 0b100);
        assert_eq!(f.instrs[3].chain, vec![("strip.cuh".into(), 50)]);
        assert_eq!(f.instrs[4].target.as_deref(), Some(".L_x_1"));
        assert_eq!(f.labels[".L_x_1"], 3);
        assert_eq!(f.loops(), vec![(3, 4)]);
        assert_eq!(f.blocks(), vec![(0, 3), (3, 5), (5, 6)]);
        // both loads are outstanding when the first use waits on their barrier
        let inflight = f.loads_in_flight();
        assert_eq!((inflight[&1], inflight[&2]), (2, 2));
    }

    #[test]
    fn dynamic_counts_follow_the_sites() {
        let f = &parse_nvdisasm(SAMPLE)[0];
        let sites: HashMap<(String, u32), usize> =
            [(("pool_forward.cu".to_string(), 98), 0)].into();
        // 10 warp requests at the site, shared by its 2 instructions: block 0 runs 5 times; the
        // loop block has no traced instruction and is in a loop without any: once per warp (4).
        let none = HashSet::new();
        let (total, per) = f.dynamic_instructions(&sites, &[10.0], &none, 4.0);
        assert_eq!(per[1], 5.0);
        assert_eq!(per[3], 4.0);
        assert_eq!(total, 3.0 * 5.0 + 2.0 * 4.0 + 4.0);
        // A mark at strip.cuh:50 that lanes reached 3 times: the blocks of that line with no
        // access (the loop's, and the EXIT's) run 3 times, not as often as the code around.
        let sites: HashMap<(String, u32), usize> = [
            (("pool_forward.cu".to_string(), 98), 0),
            (("strip.cuh".to_string(), 50), 1),
        ]
        .into();
        let marks: HashSet<(String, u32)> = [("strip.cuh".to_string(), 50)].into();
        let (total, per) = f.dynamic_instructions(&sites, &[10.0, 3.0], &marks, 4.0);
        assert_eq!((per[1], per[3]), (5.0, 3.0));
        assert_eq!(total, 3.0 * 5.0 + 2.0 * 3.0 + 3.0);
        // The same mark line with no marks in the trace: a path no lane took runs 0 times.
        let sites: HashMap<(String, u32), usize> =
            [(("pool_forward.cu".to_string(), 98), 0)].into();
        let (total, per) = f.dynamic_instructions(&sites, &[10.0], &marks, 4.0);
        assert_eq!((per[1], per[3]), (5.0, 0.0));
        assert_eq!(total, 3.0 * 5.0);
        // The loads inlined through a mark's line that no lane reached (common.cuh:37): they
        // never ran, though their site (pool_forward.cu:98) has requests from another copy.
        let sites: HashMap<(String, u32), usize> = [
            (("pool_forward.cu".to_string(), 98), 0),
            (("strip.cuh".to_string(), 50), 1),
        ]
        .into();
        let marks: HashSet<(String, u32)> = [
            ("strip.cuh".to_string(), 50),
            ("common.cuh".to_string(), 37),
        ]
        .into();
        let (_, per) = f.dynamic_instructions(&sites, &[10.0, 3.0], &marks, 4.0);
        assert_eq!((per[1], per[2], per[3]), (0.0, 0.0, 3.0));
    }

    /// nvdisasm's text for `body` (label lines and instructions, one per line), with zero
    /// control words.
    fn function_text(name: &str, body: &[&str]) -> String {
        let mut t = format!("//--------------------- .text.{name} --------------------------\n");
        let mut off = 0;
        for l in body {
            if l.ends_with(':') {
                t += &format!("{l}\n");
            } else {
                t += &format!(
                    "        /*{off:04x}*/                   {l} ;  /* 0x0000000000000000 */\n\
                     /* 0x000fe20000000000 */\n"
                );
                off += 16;
            }
        }
        t
    }

    #[test]
    fn if_else_joins_run_as_often_as_the_code_before_them() {
        let text = function_text(
            "k",
            &[
                "ISETP.NE.AND P0, PT, R2, RZ, PT",
                "BSSY B0, `(.L_x_2)",
                "@P0 BRA `(.L_x_1)",
                "IADD3 R3, R3, 0x1, RZ", // then
                "BRA `(.L_x_3)",
                ".L_x_1:",
                "IADD3 R3, R3, 0x2, RZ", // else, falls into the join
                ".L_x_3:",
                "BSYNC B0",
                ".L_x_2:",
                "FADD R4, R4, R3",
                "EXIT",
            ],
        );
        let f = &parse_nvdisasm(&text)[0];
        let blocks = f.blocks();
        assert_eq!(blocks, vec![(0, 3), (3, 5), (5, 6), (6, 7), (7, 9)]);
        let c = f.equivalent_blocks(&blocks);
        // the BSSY's block, the join (BSYNC) and the code after it; each side on its own
        assert_eq!((c[0], c[3], c[4]), (0, 0, 0));
        assert_ne!(c[1], c[0]);
        assert_ne!(c[2], c[0]);
        assert_ne!(c[1], c[2]);
        // Nothing traced, no loop: each block once per warp (4).
        let sites: HashMap<(String, u32), usize> = HashMap::new();
        let (_, per) = f.dynamic_instructions(&sites, &[], &HashSet::new(), 4.0);
        assert_eq!(per[5], 4.0);
    }

    #[test]
    fn a_switch_jump_table_target_joins_nothing_through_its_unknown_predecessors() {
        let text = function_text(
            "k",
            &[
                "BRX R2 -0x20",
                ".L_x_6:", // named by no branch: a jump-table target
                "IADD3 R3, R3, 0x1, RZ",
                ".L_x_7:", // another, also reached by falling through from .L_x_6
                "IADD3 R3, R3, 0x2, RZ",
                "EXIT",
            ],
        );
        let f = &parse_nvdisasm(&text)[0];
        let blocks = f.blocks();
        assert_eq!(blocks, vec![(0, 1), (1, 2), (2, 4)]);
        let c = f.equivalent_blocks(&blocks);
        assert_ne!(c[1], c[0], "BRX's successors are unknown");
        assert_ne!(
            c[2], c[1],
            "the second case has the BRX as a predecessor too, unseen"
        );
        // Without the indirect branch the same fall-through joins them.
        let text = function_text(
            "k",
            &[
                "@P0 EXIT",
                ".L_x_6:",
                "IADD3 R3, R3, 0x1, RZ",
                ".L_x_7:",
                "IADD3 R3, R3, 0x2, RZ",
                "EXIT",
            ],
        );
        let f = &parse_nvdisasm(&text)[0];
        let c = f.equivalent_blocks(&f.blocks());
        assert_eq!(c[2], c[1]);
    }

    /// A straight-line function of `(opcode, write barrier, wait mask)`.
    fn straight(code: &[(&str, Option<u8>, u8)]) -> Function {
        Function {
            name: "k".into(),
            instrs: code
                .iter()
                .enumerate()
                .map(|(i, &(op, wb, wait))| Instr {
                    offset: 16 * i as u32,
                    predicate: None,
                    opcode: op.into(),
                    operands: Vec::new(),
                    control: Control {
                        stall: 1,
                        write_barrier: wb,
                        read_barrier: None,
                        wait_mask: wait,
                    },
                    class: Class::of(op),
                    width: width_of(op),
                    chain: Vec::new(),
                    target: None,
                })
                .collect(),
            ..Function::default()
        }
    }

    #[test]
    fn shuffles_count_as_shared_loads_and_global_loads_do_not_change() {
        // A warp shuffle has a site (the emulator traces it as one shared wavefront).
        for op in ["SHFL.UP", "SHFL.DOWN", "SHFL.IDX", "LDS.U.128"] {
            assert_eq!(Class::of(op), Class::SharedLoad, "{op}");
        }
        assert!(Class::of("SHFL.DOWN").is_traced());
        assert_eq!(Class::of("LDG.E.128"), Class::GlobalLoad);
        assert_eq!(Class::of("VOTE.ANY"), Class::Other);
    }

    #[test]
    fn a_batch_of_loads_counts_as_in_flight_together_however_it_is_used() {
        // 4 loads on barriers 0..3, then each used in turn: all 4 were in flight at the first
        // stall (the old rule, at each load's own use: 4, 3, 2, 1).
        let f = straight(&[
            ("LDG.E.128", Some(0), 0),
            ("LDG.E.128", Some(1), 0),
            ("LDG.E.128", Some(2), 0),
            ("LDG.E.128", Some(3), 0),
            ("FADD", None, 0b0001),
            ("FADD", None, 0b0010),
            ("FADD", None, 0b0100),
            ("FADD", None, 0b1000),
        ]);
        let n = f.loads_in_flight();
        assert_eq!((n[&0], n[&1], n[&2], n[&3]), (4, 4, 4, 4));
        // Serialised: load, use, load, use: 1 each.
        let f = straight(&[
            ("LDG.E", Some(0), 0),
            ("IADD3", None, 0b0001),
            ("LDG.E", Some(0), 0),
            ("FADD", None, 0b0001),
        ]);
        let n = f.loads_in_flight();
        assert_eq!((n[&0], n[&2]), (1, 1));
        // Pipelined: A, B, wait A, C, D, wait B: B was in flight with A at the first stall (2)
        // and with C and D at its own (3): 3.
        let f = straight(&[
            ("LDG.E", Some(0), 0),
            ("LDG.E", Some(1), 0),
            ("FADD", None, 0b0001),
            ("LDG.E", Some(2), 0),
            ("LDG.E", Some(3), 0),
            ("FADD", None, 0b0010),
            ("FADD", None, 0b1100),
        ]);
        let n = f.loads_in_flight();
        assert_eq!((n[&0], n[&1], n[&3], n[&4]), (2, 3, 3, 3));
        // A wait on something else (barrier 5, not a load's) is not a memory stall; a load issued
        // before the wait on an older one is in flight with it (prefetch).
        let f = straight(&[
            ("LDG.E", Some(0), 0),
            ("S2R", Some(5), 0),
            ("IADD3", None, 0b10_0000),
            ("LDG.E", Some(1), 0),
            ("FADD", None, 0b0001),
            ("FADD", None, 0b0010),
        ]);
        let n = f.loads_in_flight();
        assert_eq!((n[&0], n[&3]), (2, 2));
    }

    #[test]
    fn resource_usage_is_parsed() {
        let r = parse_res_usage(
            " Function bp_x_f16_nchw:\n  REG:45 STACK:0 SHARED:1024 LOCAL:8 CONSTANT[0]:936 TEXTURE:0\n",
        );
        assert_eq!(
            r["bp_x_f16_nchw"],
            Resources {
                registers: 45,
                shared: 1024,
                stack: 0,
                local: 8
            }
        );
    }
}
