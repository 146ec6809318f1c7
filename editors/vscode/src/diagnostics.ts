// Config errors from the daemon's Validate as Diagnostics at file:line:column,
// refreshed when a config file of the project is saved and when the daemon connects.
import * as path from "node:path";

import type { ConfigError, ValidateResponse } from "@devenv/api";
import * as vscode from "vscode";

import type { Daemon } from "./daemon";
import type { Environment, Model } from "./model";

export class ConfigDiagnostics implements vscode.Disposable {
  readonly collection = vscode.languages.createDiagnosticCollection("devenv");
  /** Files each environment's last validation put diagnostics on. */
  private readonly files = new Map<string, vscode.Uri[]>();
  private readonly validated = new vscode.EventEmitter<{ env: Environment; response: ValidateResponse }>();
  /** Fires after each validation (tests wait on it). */
  readonly onDidValidate = this.validated.event;

  constructor(
    private readonly model: Model,
    private readonly daemon: Daemon,
  ) {}

  /** Validates every environment (on connect). */
  async validateAll(): Promise<void> {
    await Promise.all(this.model.environments.map((e) => this.validate(e)));
  }

  /** The environment a saved file belongs to: `<project>/.devenv/**.yml`, or `.env`. */
  owner(doc: vscode.TextDocument): Environment | undefined {
    const p = doc.uri.fsPath;
    return this.model.environments.find(
      (e) => (p.startsWith(`${e.projectDir}/.devenv/`) && /\.ya?ml$/.test(p)) || p === `${e.projectDir}/.env`,
    );
  }

  async validate(env: Environment): Promise<ValidateResponse | undefined> {
    let response: ValidateResponse;
    try {
      const conn = await this.daemon.connection();
      response = (await conn.environments.validate({ environment: env.ref() }, { timeout: 30_000 })).response;
    } catch {
      // Not connected: the status bar says so; validated again on connect.
      return undefined;
    }
    this.show(env, response);
    if (response.valid && response.name) this.model.setName(env, response.name);
    this.validated.fire({ env, response });
    return response;
  }

  show(env: Environment, response: ValidateResponse): void {
    for (const uri of this.files.get(env.key) ?? []) this.collection.delete(uri);
    const byFile = new Map<string, vscode.Diagnostic[]>();
    const add = (e: ConfigError, severity: vscode.DiagnosticSeverity): void => {
      const file =
        e.file === "" ? path.join(env.projectDir, ".devenv", "config.yml") : path.resolve(env.projectDir, e.file);
      // The daemon's lines and columns are 1-based; 0 means unknown.
      const line = Math.max(e.line, 1) - 1;
      const col = Math.max(e.column, 1) - 1;
      const d = new vscode.Diagnostic(
        new vscode.Range(line, col, line, col + Math.max(e.key.split(".").pop()?.length ?? 1, 1)),
        e.hint ? `${e.message} (${e.hint})` : e.message,
        severity,
      );
      d.source = "devenv";
      if (e.key) d.code = e.key;
      const list = byFile.get(file) ?? [];
      list.push(d);
      byFile.set(file, list);
    };
    for (const e of response.errors) add(e, vscode.DiagnosticSeverity.Error);
    for (const e of response.warnings) add(e, vscode.DiagnosticSeverity.Warning);
    const uris: vscode.Uri[] = [];
    for (const [file, diags] of byFile) {
      const uri = vscode.Uri.file(file);
      this.collection.set(uri, diags);
      uris.push(uri);
    }
    this.files.set(env.key, uris);
  }

  dispose(): void {
    this.collection.dispose();
    this.validated.dispose();
  }
}
