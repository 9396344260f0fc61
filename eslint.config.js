// Lint rules for gitroot (run by `npm run lint` and scripts/test.sh): eslint's and
// typescript-eslint's recommended sets; `_`-prefixed names are deliberately unused. Layout is
// prettier's (.prettierrc.json, `npm run format`), so eslint-config-prettier turns off the rules it owns.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'node_modules/', '.test-build/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  prettier,
);
