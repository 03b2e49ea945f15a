"""The virtual clock and local serving shared by devhost and the emulators (neither imports the
other): one notion of "now" across processes, its admin routes, and binding an aiohttp app."""
