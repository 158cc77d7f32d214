//! Live statistics: counters, gauges, histograms, rates and a registry.
