/**
 * Where the local config (the `file` source of settings) is read from when `--config` does
 * not say: a directory of *.conf files and conf.d/. A module of its own so that the CLI's
 * shared options can name it without loading the settings table or the loader.
 */

/** The local configuration directory read by default. */
export const DEFAULT_CONFIG_PATH = '/etc/gitroot';
