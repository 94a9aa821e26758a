// Each test file gets a database of its own, created and migrated here and dropped afterwards,
// so files run in parallel against the shared PostgreSQL without seeing each other.
import { randomBytes } from "node:crypto";
import { migrate, openOrm } from "../../src/store/orm.js";

export const ADMIN_URL = process.env.TEST_DATABASE_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** A fresh, migrated database named after the test file. */
export async function createTestDatabase(label: string): Promise<TestDatabase> {
  const name = `promotions_test_${label.replace(/[^a-z0-9]/gi, "_").toLowerCase().slice(0, 30)}_${randomBytes(4).toString("hex")}`;
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  await migrate({ databaseUrl: url.toString() });
  return {
    url: url.toString(),
    name,
    async drop() {
      const admin = await openOrm({ databaseUrl: ADMIN_URL, poolMax: 1 });
      try {
        await admin.em.getConnection().execute(`drop database if exists "${name}" with (force)`);
      } finally {
        await admin.close();
      }
    },
  };
}
