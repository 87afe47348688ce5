import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The three floors (docs/architecture.md): src/agent/ is the kernel, src/tasks/<capability>/
// builds on it, src/app/ (CLI, commands, daemon) uses both. Imports only go down.
const childProcess = { name: 'child_process', message: 'use the command runner (src/agent/runner.ts)' };
const upTo = (floors, why) => {
  const source = `^(\\.\\./)+(${floors.join('|')})/`;
  return {
    'no-restricted-imports': ['error', { paths: [childProcess], patterns: [{ regex: source, message: why }] }],
    // no-restricted-imports does not see import(): the same rule for dynamic imports.
    'no-restricted-syntax': ['error', { selector: `ImportExpression[source.value=/${source.replaceAll('/', '\\/')}/]`, message: why }],
  };
};

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'node_modules/**', '.tap/**', 'packaging/jupyterhub/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        URL: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        Buffer: 'readonly',
        fetch: 'readonly',
        AbortSignal: 'readonly',
        Response: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-restricted-imports': ['error', { paths: [{ name: 'child_process', message: 'use the command runner (src/agent/runner.ts)' }] }],
    },
  },
  {
    files: ['src/agent/**'],
    rules: upTo(['tasks', 'app'], 'the kernel (src/agent/) imports neither tasks nor the app: pass the capability in instead'),
  },
  {
    files: ['src/tasks/**'],
    rules: upTo(['app'], 'tasks (src/tasks/) never import the app (src/app/)'),
  },
  {
    files: ['test/**', 'bench/**', 'scripts/**'],
    rules: { 'no-restricted-imports': 'off', '@typescript-eslint/no-non-null-assertion': 'off' },
  },
);
