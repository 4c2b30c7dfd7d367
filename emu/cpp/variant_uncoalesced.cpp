// One of the performance gates' deliberately broken kernels (model/src/gates.rs must flag
// them): the pooling family compiled again with BP_GATE_VARIANT = 2 (strip kernels whose lanes
// run along strips instead of output columns or channels, so their loads do not coalesce),
// registered as "gate_uncoalesced:<symbol>". In a namespace, so that its kernels do not clash
// with the real ones (host emulation gives kernels no C linkage); its own translation unit,
// because the kernel headers are included once per unit.
#include "emu.h"

#define BP_GATE_VARIANT 2
#define BP_EMU_PREFIX "gate_uncoalesced:"
namespace bp_gate_uncoalesced {
#include "pool_forward.cu"
} // namespace bp_gate_uncoalesced

// Referenced by the launcher so that the linker keeps this object (and its registrars).
void bp_emu_variant_uncoalesced_anchor() {}
