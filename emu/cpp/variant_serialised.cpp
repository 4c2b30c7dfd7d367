// One of the performance gates' deliberately broken kernels (model/src/gates.rs must flag
// them): the pooling family compiled again with BP_GATE_VARIANT = 1 (strip kernels whose span loads
// each wait for the one before), registered as "gate_serialised:<symbol>", so that its trace
// names the same source lines as the variant's SASS (model/build.rs). In a namespace, so that its kernels do not clash
// with the real ones (host emulation gives kernels no C linkage); its own translation unit,
// because the kernel headers are included once per unit.
#include "emu.h"

#define BP_GATE_VARIANT 1
#define BP_EMU_PREFIX "gate_serialised:"
namespace bp_gate_serialised {
#include "pool_forward.cu"
} // namespace bp_gate_serialised

// Referenced by the launcher so that the linker keeps this object (and its registrars).
void bp_emu_variant_serialised_anchor() {}
