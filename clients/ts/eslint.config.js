// Lints the hand-written sources; src/gen is generated (checked by `npm run
// check-gen` and tsc instead).
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["src/gen/**", "node_modules/**"] },
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
  },
  {
    files: ["**/*.js", "**/*.mjs"],
    ...tseslint.configs.disableTypeChecked,
  },
);
