export async function benchmark(): Promise<void> {
  await Promise.resolve();
}
