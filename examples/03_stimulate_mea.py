"""Stimulate EI2 through four MEA channels with a 20 Hz train of biphasic pulses and
compare each channel's spike count before and during stimulation.

The first two seconds are left out: a culture started from rest answers with a surge
of activity that is not part of its steady state (livn dynamics drops it too)."""

import numpy as np

from livn import make
from livn.io import pulse_train

env = make("EI2")
env.record_spikes()
channels = env.system.num_channels
env.run(2000)  # settle past the onset surge
baseline_it, baseline_t, *_ = env.run(1000)  # 1 s without stimulus
stimulus = pulse_train(1000, channels=[5, 6, 9, 10], num_channels=channels, amplitude=30.0, rate=20.0, dt=env.dt)
it, t, *_ = env.run(1000, stimulus=stimulus)  # µA per channel, one sample per dt
before = [len(s) for s in env.channel_spikes(baseline_it, baseline_t)]
during = [len(s) for s in env.channel_spikes(it, t)]
print("channel  spikes before  during")
for channel in range(channels):
    print(f"{channel:7d} {before[channel]:14d} {during[channel]:7d}")
print(f"total: {sum(before)} -> {sum(during)}; centre channels 5, 6, 9, 10: "
      f"{sum(np.take(before, [5, 6, 9, 10]))} -> {sum(np.take(during, [5, 6, 9, 10]))}")
