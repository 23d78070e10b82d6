"""Change synaptic weights and noise between runs (no recompilation) and compare rates."""

from livn import make
from livn.measures import mean_rate

env = make("EI2")
env.record_spikes()
params = env.system.default_params()
for scale in (0.0, 1.0, 2.0):
    env.clear()
    env.set_params({name: params[name] * scale for name in env.system.weight_names if name.startswith("EXC")})
    it, t, *_ = env.run(1000)
    print(f"excitatory weights x{scale:g}: {mean_rate(it, t, env.system.gids(), 200, 1000):.2f} Hz")
