"""Simulate EI2 for 1 s of spontaneous activity and draw a raster (out/examples/spontaneous.png)."""

from livn import make
from livn.measures import mean_rate
from livn.plot import plot_activity

env = make("EI2")
print(env.system.default_params())  # the tuned weights and noise
env.record_spikes()
env.record_voltage()
it, t, iv, v, *_ = env.run(1000)  # ms
print(f"{len(it)} spikes; EXC {mean_rate(it, t, env.system.gids('EXC'), 0, 1000):.1f} Hz, "
      f"INH {mean_rate(it, t, env.system.gids('INH'), 0, 1000):.1f} Hz; voltages {v.shape} (mV)")
print("raster:", plot_activity(env.system, it, t, "out/examples/spontaneous.png", duration=1000))
