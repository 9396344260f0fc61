#!/usr/bin/env node
/** gitroot's entry point: runs the CLI and sets the exit status (the only place that does). */
import { run } from '../lib/cli/main.js';

process.exitCode = await run(process.argv);
